"""navkit.ros_ws.navkit_nodes."""
