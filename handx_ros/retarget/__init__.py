"""Pinocchio retargeting core (numpy, pinocchio, dex_retargeting; no torch, no rclpy)."""
