"""navkit.hardware: real robot drivers behind the same robot interface as ``navkit.sim``.

Empty for now: no driver ships yet (a serial motor-controller base and a bridge to vendor
ROS 2 drivers are planned). Anything placed here implements
:class:`navkit.sim.robot_interface.RobotInterface` unchanged.
"""
