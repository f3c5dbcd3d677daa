"""Resumable HTTP downloads with a progress bar and checksum helpers (used for STL-10)."""
import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ground.errors import UserError


def file_md5(path, chunk=1 << 22):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url, destination, timeout=60):
    """Fetch url to destination, resuming a partial file; returns the path."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the partial file is already complete
            partial.replace(destination)
            return destination
        raise UserError(f"could not download {url}: HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        raise UserError(f"could not download {url} ({getattr(err, 'reason', err)}): offline? "
                        f"a partial file is kept in {partial} and resumed next time") from None
    with response:
        resumed = have and response.status == 206
        mode, start = ("ab", have) if resumed else ("wb", 0)
        total = response.length + start if response.length is not None else None
        with open(partial, mode) as f, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                            desc=destination.name) as progress:
            try:
                while True:
                    block = response.read1(1 << 20) if hasattr(response, "read1") else response.read(1 << 20)
                    if not block:
                        break
                    f.write(block)
                    progress.update(len(block))
            except (http.client.HTTPException, OSError) as err:
                raise UserError(f"the download of {url} was interrupted ({type(err).__name__}); the partial file "
                                f"{partial} is kept: run again to resume") from None
        if total is not None and partial.stat().st_size < total:
            raise UserError(f"the download of {url} stopped early; the partial file {partial} is kept: run again "
                            f"to resume")
    partial.replace(destination)
    return destination
