"""navkit.ros_ws."""
