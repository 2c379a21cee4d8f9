"""Thin rclpy nodes: message -> numpy -> library call -> message."""
