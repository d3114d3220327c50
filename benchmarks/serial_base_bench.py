"""Serial base: command-to-wheel latency and encoder round trip against the RoboClaw emulator.

What is measured, honestly:

* **command → wheel setpoint**: from just before ``apply_command`` (the next ``advance``
  sends it) to the instant the emulated controller changes its motor setpoint, both on
  ``time.monotonic()`` in one process. It covers the driver (limits, kinematics, framing,
  CRC), pyserial, the kernel's pty and the emulator's thread wake-up and parsing. It does
  not cover the controller's PID or the motor: the setpoint is the last thing both a real
  RoboClaw and the emulator agree on.
* **encoder read round trip**: one ``read_encoder_counts()`` (command 78: 2 bytes out,
  10 back, CRC checked), wall time on the host.
* **bad-frame counters**: what the emulator refused (bad CRC, unknown command, truncated,
  stray bytes) and what the driver refused (bad replies, timeouts) during the run.

Modes: ``pty`` moves bytes as fast as the kernel does (no wire time: a lower bound);
``38400 baud`` makes the emulator add 10 bits of wire time per byte each way, as a
RoboClaw's UART at the driver's default baud would (USB-CDC RoboClaws are faster than this);
``5% corrupted`` flips a bit in one reply in twenty, to show the counters and the latency
under noise. Scheduling of Python threads is included in every number.

    python -m navkit.benchmarks.serial_base_bench --n 200
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from navkit.common.json_output import to_json
from navkit.common.sensor_data import VelocityCommand
from navkit.hardware.roboclaw_emulator import EmulatorConfig, RoboClawEmulator
from navkit.hardware.serial_base import SerialBase, SerialBaseConfig

MODES: tuple[tuple[str, int | None, float], ...] = (
    ("pty", None, 0.0),
    ("38400 baud", 38400, 0.0),
    ("pty, 5% corrupted replies", None, 0.05),
)
"""(name, modelled baud or None, reply corruption probability)."""


def _percentiles(values_s: list[float]) -> dict[str, float]:
    if not values_s:
        return {"median": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    ms = np.asarray(values_s) * 1e3
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)), "max": float(ms.max())}


def _run_mode(n: int, model_baud: int | None, corruption: float, seed: int, link: Path) -> dict[str, Any]:
    emu_config = EmulatorConfig(model_baud=model_baud, reply_corruption=corruption, seed=seed, link=str(link))
    with RoboClawEmulator(emu_config) as emu:
        base = None
        for _ in range(20):  # with corrupted replies the handshake may need another try
            base = SerialBase(SerialBaseConfig(port=emu.port, accel_max=100.0, alpha_max=100.0,
                                               reconnect_period_s=0.05, max_consecutive_failures=10))
            if base.connected:
                break
            base.close()
        if base is None or not base.connected:
            raise RuntimeError(f"cannot connect to the emulator: {base.last_error if base else ''}")
        try:
            base.reset()
            base.advance(0.1)
            latencies: list[float] = []
            missed = 0
            for i in range(n):
                v = 0.1 if i % 2 == 0 else 0.2  # every command changes the setpoint
                t0 = time.monotonic()
                base.apply_command(VelocityCommand(base.now(), v, 0.0))
                base.advance(0.02)
                changes = [t for t, m1, _ in emu.setpoint_changes(t0) if m1 != 0]
                if changes:
                    latencies.append(changes[0] - t0)
                else:
                    missed += 1  # the drive packet was lost to a failed exchange; the next one carries it
            base.apply_command(VelocityCommand(base.now(), 0.0, 0.0))
            base.advance(0.1)
            rtts: list[float] = []
            for _ in range(n):
                t0 = time.perf_counter()
                counts = base.read_encoder_counts()
                if counts is not None:
                    rtts.append(time.perf_counter() - t0)
            snap = emu.snapshot()
        finally:
            base.close()
    s, d = snap.stats, base.stats
    return {
        "model_baud": model_baud,
        "reply_corruption": corruption,
        "latency_ms": _percentiles(latencies),
        "latency_samples": len(latencies),
        "latency_missed": missed,
        "encoder_rtt_ms": _percentiles(rtts),
        "encoder_reads_ok": len(rtts),
        "emulator": {"valid_frames": s.valid_frames, "bad_frames": s.bad_frames, "bad_crc": s.bad_crc,
                     "unknown_command": s.unknown_command, "truncated": s.truncated,
                     "not_addressed": s.not_addressed, "replies_corrupted": s.replies_corrupted,
                     "internal_errors": s.internal_errors},
        "driver": {"commands_sent": d.commands_sent, "bad_replies": d.bad_replies,
                   "reply_timeouts": d.reply_timeouts, "link_losses": d.link_losses, "reconnects": d.reconnects},
    }


def run(n: int = 200, seed: int = 0) -> dict[str, Any]:
    """Measure every mode of :data:`MODES` with ``n`` commands and ``n`` encoder reads each."""
    if n < 1:
        raise ValueError(f"n: must be >= 1, got {n}")
    with tempfile.TemporaryDirectory(prefix="navkit-serial-bench-") as tmp:
        modes = {name: _run_mode(n, baud, corruption, seed, Path(tmp) / f"roboclaw{i}")
                 for i, (name, baud, corruption) in enumerate(MODES)}
    return {"n": n, "seed": seed, "modes": modes}


def format_table(result: dict[str, Any]) -> str:
    """Aligned plain-text table of a :func:`run` result."""
    header = (f"{'mode':<28}{'cmd→wheel ms':>14}{'p90':>7}{'p99':>7}{'enc read ms':>13}{'p90':>7}{'p99':>7}"
              f"{'emu bad':>9}{'drv bad':>9}{'timeouts':>10}")
    lines = [
        f"Serial base vs RoboClaw emulator: {result['n']} commands and {result['n']} encoder reads per mode "
        "(medians; pty = no wire time)",
        header,
        "-" * len(header),
    ]
    for name, m in result["modes"].items():
        lat, rtt = m["latency_ms"], m["encoder_rtt_ms"]
        lines.append(f"{name:<28}{lat['median']:>14.2f}{lat['p90']:>7.2f}{lat['p99']:>7.2f}"
                     f"{rtt['median']:>13.2f}{rtt['p90']:>7.2f}{rtt['p99']:>7.2f}"
                     f"{m['emulator']['bad_frames']:>9}{m['driver']['bad_replies']:>9}"
                     f"{m['driver']['reply_timeouts']:>10}")
    lines.append("-" * len(header))
    lines.append("cmd→wheel: apply_command + advance until the emulated controller's setpoint changes; "
                 "enc read: command 78 round trip. Corrupted mode: "
                 + ", ".join(f"{m['emulator']['replies_corrupted']} replies corrupted, "
                             f"{m['latency_missed']} commands carried by the next packet"
                             for m in result["modes"].values() if m["reply_corruption"] > 0))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m navkit.benchmarks.serial_base_bench",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="commands and encoder reads per mode")
    parser.add_argument("--seed", type=int, default=0, help="seeds the reply corruption")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON instead of a table")
    args = parser.parse_args(argv)
    result = run(n=args.n, seed=args.seed)
    print(to_json(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
