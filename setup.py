"""One setup.py for both Python packages: ``syncvp_core`` (ROS-free) and ``syncvp_ros`` (the node).

``pip install -e .[dev]`` for non-ROS users; ``colcon build`` for ROS users (ament_python).
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "syncvp_ros"

# torch is pinned: a bare ``torch`` makes pip resolve a multi-GB CUDA build on CPU machines.
TORCH = "torch==2.13.0"
ROS = [
    "ros-kilted-rclpy",
    "ros-kilted-sensor-msgs",
    "ros-kilted-rmw-fastrtps-cpp",
    "ros-kilted-diagnostic-msgs",
    "ros-kilted-std-srvs",
]
EXPORT = ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.2"]
SIM = ["mujoco>=3.1"]
EVAL = ["scipy>=1.10", "scikit-image>=0.22", "matplotlib>=3.8"]
DEV = ["pytest<9", "ruff>=0.6", "tensorboard>=2.16", "hypothesis>=6.100"]
# colcon test runs pytest only for packages with a "test" extra (launch_testing 3.7's plugin needs pytest<9).
TEST = ["pytest<9"]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="SyncVP: online multi-modal (RGB + depth) video forecasting for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["syncvp_core", "syncvp_core.*", "syncvp_ros", "syncvp_ros.*"]),
    include_package_data=True,
    package_data={"syncvp_core": ["assets/*", "assets/**/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/model", glob("config/model/*.yaml")),
        (f"share/{PACKAGE}/config/train", glob("config/train/*.yaml")),
        (f"share/{PACKAGE}/data/demo", glob("data/demo/*.md") + glob("data/demo/*.json")),
        (f"share/{PACKAGE}/data/demo/sim_street", glob("data/demo/sim_street/*")),
        (f"share/{PACKAGE}/data/demo/tum_fr1_xyz", glob("data/demo/tum_fr1_xyz/*")),
    ],
    install_requires=[
        TORCH,
        "numpy>=1.24",
        "pyyaml>=6",
        "safetensors>=0.4",
        "click>=8.1",
        "tqdm>=4.66",
        "pillow>=10",
        "rosbags>=0.10",
        # The default model's motion prior runs OpenCV's DIS optical flow (syncvp_core/flow_extrapolation.py).
        "opencv-python-headless>=4.8",
    ],
    extras_require={
        "ros": ROS,
        "export": EXPORT,
        "sim": SIM,
        "eval": EVAL,
        "dev": DEV,
        "test": TEST,
        "all": ROS + EXPORT + SIM + EVAL + DEV,
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "syncvp = syncvp_core.cli:main",
            "predictor_node = syncvp_ros.node_main:cli",
            "bag_player = syncvp_ros.bag_player:main",
        ],
        # The core CLI's `eval-bag --online` looks this up (syncvp_core never imports syncvp_ros).
        "syncvp.online_eval": ["node = syncvp_ros.online_eval:run_from_cli"],
    },
)
