"""The app's cold start and one request per tab, timed from outside as a user meets them.

    python benchmarks/app_startup.py                 # tiny presets, offline (the target: cold start < 10 s)
    python benchmarks/app_startup.py --planner       # also "Write the steps" with the offline GGUF planner

Starts ``python app.py`` as a fresh process (HF_HUB_OFFLINE=1), then measures, with gradio_client:
* until the page answers HTTP 200;
* cold start: from process start until the first request (a 3-step recipe) has completed, model loading included;
* one more request per tab with the models loaded: recipe -> illustrations, photo -> edit + video, animate my recipe.
Sizes are the presets' defaults (tiny: 128 px illustrations, 64 px ShowMe frames, 4 denoising steps, 16 frames).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TARGET_COLD_START_S = 10.0
GOAL = "Make a cup of tea"
STEPS = "Boil the water in a kettle.\nPut a tea bag in the mug.\nPour the hot water over the tea bag."


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the app exited with code {process.returncode} before it answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"the app did not answer within {timeout:.0f} s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far: unlike wall time, barely affected by other work on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planner", action="store_true", help="also time 'Write the steps' (loads the GGUF planner)")
    args = parser.parse_args(argv)

    from gradio_client import Client, handle_file

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    workdir = Path(tempfile.mkdtemp(prefix="showme-app-bench-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, str(ROOT / "app.py"), "--preset", "tiny", "--showme-preset", "tiny",
               "--port", str(port), "--runs-dir", str(workdir / "runs")]
    rows: list[tuple[str, float]] = []
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_http(url, process)
        rows.append(("page answers (HTTP 200)", time.perf_counter() - started))
        client = Client(url, verbose=False, download_files=str(workdir / "downloads"))

        def illustrate():
            return client.predict(GOAL, STEPS, "tiny", 0, 4, 5.0, 128, 1.0, api_name="/illustrate")

        illustrate()
        cold = time.perf_counter() - started
        rows.append(("cold start -> first recipe done", cold))
        rows.append(("  the app's CPU time until then", _cpu_seconds(process.pid)))

        def timed(name, call):
            start = time.perf_counter()
            call()
            rows.append((name, time.perf_counter() - start))

        timed("recipe -> 3 illustrations (warm)", illustrate)
        photo = handle_file(str(workdir / "runs" / "examples" / "kitchen_cutting_board.png"))
        timed("photo -> edit + 16-frame video (first)",
              lambda: client.predict(photo, "Cut the tomato in half", "both", "tiny", 0, 4, 7.5, 16, 8, "crop",
                                     api_name="/photo"))
        timed("photo -> edit + 16-frame video (warm)",
              lambda: client.predict(photo, "Cut the tomato in half", "both", "tiny", 0, 4, 7.5, 16, 8, "crop",
                                     api_name="/photo"))
        timed("animate recipe -> 3 clips + stitched",
              lambda: client.predict("tiny", 0, 4, 7.5, 16, 8, api_name="/animate_recipe"))
        if args.planner:
            timed("write the steps (planner load + plan)", lambda: client.predict(GOAL, 6, 0, api_name="/plan"))
            timed("write the steps (warm)", lambda: client.predict(GOAL, 6, 0, api_name="/plan"))
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=30)

    width = max(len(name) for name, _ in rows)
    print(f"load average when it started: {load_before:.2f} (other work on the machine slows every figure)")
    print(f"{'what (tiny presets, CPU, ' + str(os.cpu_count()) + ' cores)':<{width}}  seconds")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.2f}")
    print(f"cold start / {TARGET_COLD_START_S:.0f} s target: {cold / TARGET_COLD_START_S:.2f}"
          f" ({'met' if cold < TARGET_COLD_START_S else 'missed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
