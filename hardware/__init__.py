"""navkit.hardware: real robot drivers behind the same robot-backend slot as ``navkit.sim``.

* :mod:`~navkit.hardware.serial_base`: a differential base on a RoboClaw motor controller over
  a serial line (``robot:=serial_base``): encoder odometry, velocity commands with limits, a
  host watchdog and the controller's own serial timeout, e-stop, reconnection.
* :mod:`~navkit.hardware.roboclaw_protocol`: the packet-serial frames and CRC16, no I/O.
* :mod:`~navkit.hardware.roboclaw_emulator`: a RoboClaw on a pseudo-terminal, for tests and
  for trying the driver without a robot (``python -m navkit.hardware.roboclaw_emulator``).

A robot whose vendor ships a ROS 2 driver needs no code here: ``robot:=external`` runs the
stack against that driver's topics. A driver placed here implements
:class:`navkit.common.interfaces.RobotBackend` (time is wall time) and is registered under a
name in :mod:`navkit.stack.plugin_catalog`, so ``robot:=NAME`` selects it.
"""
