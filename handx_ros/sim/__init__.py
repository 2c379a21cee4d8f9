"""MuJoCo evaluation and command safety (numpy, mujoco; no rclpy)."""
