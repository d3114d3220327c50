"""navkit.hardware: real robot drivers behind the same robot-backend slot as ``navkit.sim``.

Empty for now: no driver ships yet (a serial motor-controller base and a bridge to vendor
ROS 2 drivers are planned). A driver placed here implements
:class:`navkit.common.interfaces.RobotBackend` (time is wall time: ``advance`` waits) and is
registered under a name in :mod:`navkit.stack.plugin_catalog`, so ``robot:=NAME`` selects it.
"""
