"""syncvp_core: the ROS-free part of syncvp (model, diffusion, predictor, data, training, export, evaluation).

Nothing in this package imports rclpy or ROS message types.
"""

__version__ = "0.1.0"
