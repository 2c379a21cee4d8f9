"""HandX ROS 2 package: retargeting, simulation and the node graph.

Importing this package (or ``handx_ros.retarget`` / ``handx_ros.sim``) does not load rclpy;
only ``handx_ros.nodes`` does.
"""
