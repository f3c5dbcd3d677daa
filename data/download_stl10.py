"""Download and extract the official STL-10 binary archive into data/stl10_binary/.

Usage: python data/download_stl10.py [--url URL] [--md5 MD5]
The archive (2.6 GB) is fetched with a progress bar and resumed after an interruption (HTTP Range), checked
against its MD5, and extracted with tarfile's safe "data" filter.
"""
import argparse
import sys

from ground.errors import exit_on_user_error
from ground.paths import DATA_DIR
from data_processing.stl10 import STL10_MD5, STL10_URL, fetch_stl10


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=STL10_URL)
    parser.add_argument("--md5", default=STL10_MD5, help="expected MD5 of the archive; empty skips the check")
    parser.add_argument("--data_dir", default=str(DATA_DIR))
    args = parser.parse_args(argv)
    print(f"STL-10 ready in {fetch_stl10(args.data_dir, args.url, args.md5)}")


if __name__ == "__main__":
    main(sys.argv[1:])
