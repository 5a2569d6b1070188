"""Shared by the TensorFlow and PyTorch baselines (tf_vgg16.py, torch_vgg16.py):
the command line, the thread environment, the notebook's timing loop, the
VGG-16 FLOP and parameter counts (from `vgg-dp describe --json`), and a JSON report with the fields of vgg-dp's
RunReport (Sources/Trainer/Report.swift), so that `vgg-dp report` reads it.

Standard library only: the Swift tests run this file with a plain python3
(`VGGDP_BIN=... python3 common.py --example-report FILE`) to check that what
it writes decodes as a RunReport with vgg-dp's counts.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time

MODES = ("forward", "forward-backward")

# VGG-16 (configuration D): convolutions per block and their channels, then
# FC-4096, FC-4096, FC-classes, as VGGEngine/Model/Architecture.swift. The
# baselines build their networks from these; the counts come from vgg-dp.
VGG16_BLOCKS = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]
HIDDEN = 4096

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_descriptions = {}


def vggdp_binary():
    """$VGGDP_BIN, else <repo>/.build/release/vgg-dp (as scripts/lib/common.sh)."""
    return os.environ.get("VGGDP_BIN") or os.path.join(REPO_ROOT, ".build", "release", "vgg-dp")


def describe(image_size=224, classes=1000):
    """VGG-16's counts as vgg-dp computes them (`vgg-dp describe --json`:
    NetworkSpec's parameters, FLOPs per image and layers). Exits with a
    message when vgg-dp is not built or fails."""
    key = (image_size, classes)
    if key not in _descriptions:
        binary = vggdp_binary()
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            if os.environ.get("VGGDP_BIN"):
                print("common.py: VGGDP_BIN=%s is not an executable file" % os.environ["VGGDP_BIN"], file=sys.stderr)
            sys.exit("vgg-dp is not built: run scripts/setup.sh (or swift build -c release); "
                     "the baselines take their FLOP and parameter counts from `vgg-dp describe --json`")
        command = [binary, "describe", "--json", "--model", "vgg16", "--image-size", str(image_size),
                   "--classes", str(classes)]
        try:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            sys.exit("common.py: %s failed: %s" % (" ".join(command), e))
        if done.returncode != 0:
            sys.exit("common.py: %s failed (exit status %d): %s"
                     % (" ".join(command), done.returncode, done.stderr.decode("utf-8", "replace").strip()))
        _descriptions[key] = json.loads(done.stdout)
    return _descriptions[key]


def vgg16_flops(image_size=224, classes=1000):
    """(forward, forward + backward) FLOPs of one image, as vgg-dp counts them
    (NetworkSpec.forwardFLOPsPerImage, forwardBackwardFLOPsPerImage)."""
    d = describe(image_size, classes)
    return d["forward_flops_per_image"], d["forward_backward_flops_per_image"]


def vgg16_parameters(image_size=224, classes=1000):
    """Weights and biases of VGG-16, as vgg-dp counts them (NetworkSpec.parameterCount)."""
    return describe(image_size, classes)["parameters"]


# MARK: - Command line and threads

def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %s" % text)
    return value


def non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more, got %s" % text)
    return value


def parser(description):
    """The options both baselines take; defaults are the notebook's
    (batch 32, 100 timed steps after 10 burn-in steps)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--mode", choices=MODES + ("both",), default="both",
                   help="what to time: the notebook's 'Forward', 'Forward-backward', or both in that order "
                        "(one --report needs one mode)")
    p.add_argument("--batch-size", type=positive, default=32, help="images per step (default 32)")
    p.add_argument("--steps", type=positive, default=100, help="timed steps, the notebook's num_batches (default 100)")
    p.add_argument("--burn-in", "--warmup", dest="burn_in", type=non_negative, default=10,
                   help="untimed steps first, the notebook's num_steps_burn_in (default 10)")
    p.add_argument("--threads", type=positive, default=os.cpu_count() or 1,
                   help="compute threads (default: the CPU count)")
    p.add_argument("--seed", type=non_negative, default=42, help="seed of weights, images and dropout (default 42)")
    p.add_argument("--report", metavar="FILE", help="write a JSON report with vgg-dp's fields (written atomically)")
    p.add_argument("--no-probe", action="store_true",
                   help="skip the oneDNN probe (a short subprocess that asks oneDNN which ISA it uses)")
    return p


def parse_arguments(p):
    """Parses, checks (see check_arguments) and notes the start time."""
    args = p.parse_args()
    check_arguments(p, args)
    describe()  # the counts the report needs, before any work
    args.started_at = now_utc()
    return args


def check_arguments(p, args):
    """Refuses what one report cannot hold, and an unwritable --report, before any work."""
    if args.report:
        if args.mode == "both":
            p.error("--report needs one --mode (forward or forward-backward): one run per report, "
                    "so that its peak RSS is that mode's")
        folder = os.path.dirname(os.path.abspath(args.report))
        if not os.path.isdir(folder):
            p.error("--report %s: folder %s does not exist" % (args.report, folder))
        if not os.access(folder, os.W_OK):
            p.error("--report %s: folder %s is not writable" % (args.report, folder))
        if os.path.isdir(args.report):
            p.error("--report %s is a folder, not a file" % args.report)


def set_thread_environment(threads):
    """Every thread pool the frameworks may use gets `threads` (OpenMP, MKL,
    OpenBLAS under numpy, TensorFlow's intra-op pool) and one inter-op
    thread. Must run before the framework is imported."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


# MARK: - Timing (the notebook's time_tensorflow_run)

def time_run(step, info_string, burn_in, steps):
    """Runs `step` burn_in + steps times; returns the timed durations
    (seconds). Prints the notebook's lines: one every 10 timed steps, and
    '<info>: across N steps, mean +- sd sec / batch' at the end (population
    sd, √(E[x²] − E[x]²)). The notebook prints when the absolute step index
    is a multiple of 10, which with its 10 burn-in steps is timed step 0, 10,
    20...; this prints those timed steps for any burn-in."""
    durations = []
    for i in range(burn_in + steps):
        start = time.perf_counter()
        step()
        duration = time.perf_counter() - start
        if i >= burn_in:
            if not (i - burn_in) % 10:
                print("%s: step %d, duration = %.3f" % (datetime.datetime.now(), i - burn_in, duration), flush=True)
            durations.append(duration)
    mn = sum(durations) / steps
    vr = sum(d * d for d in durations) / steps - mn * mn
    sd = math.sqrt(max(vr, 0.0))
    print("%s: %s across %d steps, %.3f +- %.3f sec / batch" % (datetime.datetime.now(), info_string, steps, mn, sd),
          flush=True)
    return durations


def percentile(sorted_xs, q):
    """Linear interpolation between closest ranks (numpy's default), as Summary.percentile."""
    if not sorted_xs:
        return 0.0
    pos = q * (len(sorted_xs) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_xs) - 1)
    f = pos - lo
    return sorted_xs[lo] * (1 - f) + sorted_xs[hi] * f


def summary(xs):
    """The fields of vgg-dp's Summary (Sources/Trainer/Statistics.swift)."""
    if not xs:
        return {"count": 0, "mean": 0.0, "sd": 0.0, "min": 0.0, "median": 0.0, "p95": 0.0, "max": 0.0}
    n = len(xs)
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / n)
    s = sorted(xs)
    return {"count": n, "mean": mean, "sd": sd, "min": s[0], "median": percentile(s, 0.5),
            "p95": percentile(s, 0.95), "max": s[-1]}


def peak_rss_bytes():
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# MARK: - Which kernels ran

def onednn_probe(code, threads):
    """Runs `code` (one 3×3 convolution of VGG's shape in the framework) in a
    child Python with ONEDNN_VERBOSE=1 and returns what oneDNN printed, as a
    dict: {'version': 'v3.7.3', 'isa': 'Intel AVX-512 ...', 'runtime': '...',
    'convolution': 'brg_conv_fwd:avx512_core' (the implementation)}, or {}
    when oneDNN said nothing (not used, or verbose output unavailable).
    A child, because verbose mode stays on for the process that sets it."""
    env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="3")
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=300, check=False).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired):
        return {}
    info = {}
    for line in out.splitlines():
        m = re.match(r"onednn_verbose,(?:v\d+,)?info,oneDNN (v[\d.]+)", line)
        if m:
            info["version"] = m.group(1)
        m = re.match(r"onednn_verbose,(?:v\d+,)?info,cpu,isa:(.*)", line)
        if m:
            info["isa"] = m.group(1).strip()
        m = re.match(r"onednn_verbose,(?:v\d+,)?info,cpu,runtime:(.*)", line)
        if m:
            info["runtime"] = m.group(1).strip()
        m = re.match(r"onednn_verbose,(?:v\d+,)?primitive,exec,cpu,convolution,([^,]+)", line)
        if m and "convolution" not in info:
            info["convolution"] = m.group(1)
    return info


def onednn_core(info):
    """blas_core of a oneDNN run: version and the convolution kernel the probe
    saw ('oneDNN v3.7.3 brg_conv_fwd:avx512_core'), else the ISA."""
    kernel = info.get("convolution") or short_isa(info.get("isa"))
    return "oneDNN %s %s" % (info.get("version", "?"), kernel)


def onednn_config(info):
    return "oneDNN %s, isa: %s, runtime: %s, 3×3 convolution: %s" % (
        info.get("version", "?"), info.get("isa", "? (probe skipped or silent)"), info.get("runtime", "?"),
        info.get("convolution", "?"))


def short_isa(isa):
    """'Intel AVX-512 with float16, Intel DL Boost and bfloat16 support' -> 'AVX-512'."""
    s = re.sub(r"^Intel ", "", isa or "")
    s = s.split(" with ")[0].split(" (")[0].strip()
    return s or "?"


def openblas_note():
    """OPENBLAS_CORETYPE as set for this run; it does not reach oneDNN or MKL."""
    value = os.environ.get("OPENBLAS_CORETYPE")
    return "OPENBLAS_CORETYPE=%s (not used by this framework's kernels)" % value if value else "OPENBLAS_CORETYPE unset"


# MARK: - The report

def now_utc():
    """Start time as vgg-dp writes it: 2026-11-29T09:21:48Z."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_report(tool, mode, batch, threads, burn_in, seed, durations, peak_rss, blas_core, blas_config,
                command, started_at, image_size=224, classes=1000, objective=None, note=None):
    """A dict with every key RunReport needs (snake_case), for one rank.
    Fields a single-process framework run has no use for carry neutral values:
    no MPI, no buckets, no allreduce, straggler ratio 1. Per-step phases are not
    split (the framework runs the step as one call): forward = the whole step
    in forward mode, 0 otherwise."""
    forward_flops, forward_backward_flops = vgg16_flops(image_size, classes)
    step_flops = forward_flops if mode == "forward" else forward_backward_flops
    step = summary(durations)
    images_per_second = batch / step["mean"] if step["mean"] > 0 else 0.0
    gflops = images_per_second * step_flops / 1e9
    host = socket.gethostname()
    steps = [{"wall": d, "data": 0.0, "forward": d if mode == "forward" else 0.0, "backward": 0.0,
              "optimizer": 0.0, "allreduce": 0.0, "exposed": 0.0, "loss": 0.0} for d in durations]
    report = {
        "schema": 1,
        "tool": tool,
        "complete": True,
        "started_at": started_at,
        "command": command,
        "model": "vgg16",
        "image_size": image_size,
        "classes": classes,
        "width_divisor": 1,
        "mode": mode,
        "objective": objective,
        "ranks": 1,
        "batch_per_rank": batch,
        "global_batch": batch,
        "warmup": burn_in,
        "steps": len(durations),
        "seed": seed,
        "parameters": vgg16_parameters(image_size, classes),
        "forward_flops_per_image": forward_flops,
        "step_flops_per_image": step_flops,
        "hosts": [host],
        "blas_threads": threads,
        "blas_core": blas_core,
        "blas_config": blas_config,
        "openblas_coretype": None,
        "mpi_library": "none",
        "mpi_thread_level": "none",
        "overlap": False,
        "comm_wait": "none",
        "bucket_mb": 0,
        "buckets": [],
        "step_seconds": step,
        "images_per_second": images_per_second,
        "gflops_per_second": gflops,
        "gflops_per_second_per_rank": gflops,
        "straggler_ratio": 1.0,
        "allreduce_seconds_per_step": 0.0,
        "exposed_seconds_per_step": 0.0,
        "loss_per_step": [],
        "parameter_checksum": "",
        "peak_rss_bytes": peak_rss,
        "per_rank": [{
            "rank": 0, "host": host, "step_seconds": step,
            "data": 0.0, "forward": step["mean"] if mode == "forward" else 0.0, "backward": 0.0,
            "optimizer": 0.0, "allreduce": 0.0, "exposed": 0.0,
            "peak_rss_bytes": peak_rss, "steps": steps,
        }],
        "layers": [],
    }
    if objective is None:
        del report["objective"]
    if note:
        report["note"] = note
    return report


def write_report(path, report):
    """JSON, keys sorted, written atomically: a temporary file in the same
    folder, fsync, then rename over (readers see the old file or the new)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def finish(args, tool, mode, durations, blas_core, blas_config, objective=None):
    """Prints images/s and GFLOP/s as vgg-dp does, and writes --report."""
    forward_flops, forward_backward_flops = vgg16_flops()
    step_flops = forward_flops if mode == "forward" else forward_backward_flops
    mean = sum(durations) / len(durations)
    ips = args.batch_size / mean
    rss = peak_rss_bytes()
    print("images/s: %.2f  GFLOP/s: %.1f  (%s FLOP per image, counted as vgg-dp counts them)  peak RSS: %d MiB"
          % (ips, ips * step_flops / 1e9, format(step_flops, ","), rss >> 20), flush=True)
    if args.report:
        report = make_report(tool, mode, args.batch_size, args.threads, args.burn_in, args.seed, durations, rss,
                             blas_core, blas_config, [sys.argv[0]] + sys.argv[1:], args.started_at,
                             objective=objective)
        write_report(args.report, report)
        print("report: %s" % args.report, flush=True)


def run_baseline(args, tool, version, run_benchmark, kernels):
    """What each baseline does once its network is defined: a header line,
    the timed runs, the kernels that ran, then one report per mode."""
    print("%s %s: vgg16 at 224×224, batch %d, %d thread(s) (inter-op 1), mode %s, burn-in %d, steps %d; %s"
          % (tool, version, args.batch_size, args.threads, args.mode, args.burn_in, args.steps, host_line()),
          flush=True)
    results = run_benchmark()
    blas_core, blas_config = kernels()
    print("kernels: %s (%s)" % (blas_core, blas_config), flush=True)
    for mode, durations in results.items():
        finish(args, tool, mode, durations, blas_core, blas_config,
               objective="l2_loss(fc8)" if mode == "forward-backward" else None)


def host_line():
    return "%s, Python %s, %s" % (socket.gethostname(), platform.python_version(), platform.machine())


# MARK: - Self-check for the tests

def main():
    p = argparse.ArgumentParser(description="Shared code of the baselines; run directly only for checks.")
    p.add_argument("--example-report", metavar="FILE",
                   help="write a report from made-up step times (0.5, 0.7, 0.6 s; batch 16, forward-backward, "
                        "2 threads, peak RSS 3 GiB), as the baselines write theirs")
    p.add_argument("--flops", action="store_true", help="print VGG-16's FLOPs per image and parameter count")
    args = p.parse_args()
    if args.flops:
        f, fb = vgg16_flops()
        print("forward %d forward-backward %d parameters %d" % (f, fb, vgg16_parameters()))
    if args.example_report:
        report = make_report("tensorflow", "forward-backward", 16, 2, 1, 42, [0.5, 0.7, 0.6], 3 << 30,
                             "oneDNN v3.7.3 AVX-512", "TensorFlow 2.21.0 (example)", ["tf_vgg16.py", "--example"],
                             "2026-01-02T03:04:05Z", objective="l2_loss(fc8)")
        write_report(args.example_report, report)
    if not args.flops and not args.example_report:
        p.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
