#!/usr/bin/env python3
"""`make bench`: `qa-deploy seed` against `aws s3 sync` and `rclone sync`, side by side, from the
same local S3 server into fresh folders, alternating, median of --runs each; wall seconds and the
client's CPU seconds (user + system) of each tool.

(a) real_config: ../shared/fixtures/qa_server_config/authorities/ when present (else the repo's sample);
(b) files_2000: 2,000 generated files of 1-32 KB of valid YAML (validation is part of our work,
as in production); (c) seed_1gib: one 1 GiB object, one run of each tool, its seconds and peak
RSS; (d) noop_reseed: a re-seed with nothing changed, its seconds and, on moto, its GETs.
rclone runs with --transfers/--checkers 16, 32 and 64; the best of the three is reported.
Servers: moto, and s3s-fs (a fast S3 server in Rust, from crates.io), so the server is not what
is measured. Everything listens on 127.0.0.1 only."""

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

BUCKET = "bench"
ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, process, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the S3 server exited ({process.returncode}) before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"the S3 server did not listen on {port} within {deadline_s} s")


class Server:
    def __init__(self, name, s3s_fs, workdir):
        self.name = name
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.log = open(workdir / f"{name}.log", "w+")
        if name == "moto":
            command = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        else:
            data = workdir / "s3s-fs-data"
            data.mkdir()
            command = [s3s_fs, "--host", "127.0.0.1", "--port", str(port),
                       "--access-key", "testing", "--secret-key", "testing", str(data)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(port, self.process)
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing",
                               config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))
        self.s3.create_bucket(Bucket=BUCKET)

    def object_gets(self):
        """GETs of objects (not listings) in moto's access log so far; None on s3s-fs (no log)."""
        if self.name != "moto":
            return None
        self.log.flush()
        self.log.seek(0)
        return sum(1 for line in self.log if '"GET /' + BUCKET + "/" in line and "?" not in line.split('"GET ')[1].split(" ")[0])

    def stop(self):
        self.process.terminate()
        self.process.wait()


def upload_folder(server, folder, prefix):
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            server.s3.upload_file(str(path), BUCKET, prefix + path.relative_to(folder).as_posix())
            count += 1
    return count


def yaml_document(rng, size):
    """A local authority of about `size` bytes, as qa_server reads them."""
    lines = ["terms:"]
    length = 7
    while length < size:
        n = rng.randrange(10**6)
        entry = f'  - id: "term-{n}"\n    term: "Term {n} {rng.choice(WORDS)}"\n    active: {rng.choice(["true", "false"])}'
        lines.append(entry)
        length += len(entry) + 1
    return "\n".join(lines) + "\n"


WORDS = ["English", "French", "Spanish", "Latin", "Greek", "German", "Italian", "Dutch"]


def upload_generated(server, prefix, count):
    rng = random.Random(2026)
    for i in range(count):
        body = yaml_document(rng, rng.randint(1024, 32 * 1024)).encode()
        server.s3.put_object(Bucket=BUCKET, Key=f"{prefix}authority-{i:04d}.yml", Body=body)


def upload_big(server, prefix, workdir):
    big = workdir / "big.bin"
    with open(big, "wb") as out:
        chunk = os.urandom(1 << 20)
        for _ in range(1024):
            out.write(chunk)
    server.s3.upload_file(str(big), BUCKET, prefix + "big.bin")
    big.unlink()
    server.s3.put_object(Bucket=BUCKET, Key=prefix + "languages.yml", Body=b"terms: []\n")  # one authority


class Run:
    """One run of a tool: wall seconds, CPU seconds (user + system), peak RSS in MB."""

    def __init__(self, seconds, cpu, rss):
        self.seconds, self.cpu, self.rss = seconds, cpu, rss


def run(command, env):
    """Runs `command`. CPU is the child's own rusage from wait4; the peak RSS is read from /proc
    while it runs, since the rusage of a child forked from this (large) Python process would
    report Python's pages."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        try:
            with open(f"/proc/{process.pid}/status") as proc_status:
                for line in proc_status:
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{process.stderr.read().decode()}")
    return Run(seconds, usage.ru_utime + usage.ru_stime, peak_kb / 1024)


def ours(qa_deploy, server, prefix, target, extra=()):
    env = dict(os.environ, AWS_ENDPOINT_URL=server.endpoint, **CREDENTIALS)
    return run([qa_deploy, "seed", "--bucket", BUCKET, "--prefix", prefix, "--target", str(target), *extra], env)


def s3sync(server, prefix, target):
    env = dict(os.environ, **CREDENTIALS)
    return run([str(VENV_BIN / "aws"), "s3", "sync", f"s3://{BUCKET}/{prefix}", str(target),
                "--endpoint-url", server.endpoint, "--only-show-errors"], env)


RCLONE_TRANSFERS = [16, 32, 64]


def rclone(rclone_bin, transfers, server, prefix, target):
    """rclone sync with a remote given by environment variables (no config file)."""
    remote = {"TYPE": "s3", "PROVIDER": "Other", "ENDPOINT": server.endpoint, "ACCESS_KEY_ID": "testing",
              "SECRET_ACCESS_KEY": "testing", "REGION": "us-east-1", "FORCE_PATH_STYLE": "true"}
    env = dict(os.environ, **{f"RCLONE_CONFIG_BENCH_{k}": v for k, v in remote.items()})
    env.pop("AWS_CA_BUNDLE", None)  # rclone's S3 client refuses a custom CA bundle; the server is plain HTTP
    return run([rclone_bin, "--config", "/dev/null", "sync", f"bench:{BUCKET}/{prefix}", str(target),
                "--transfers", str(transfers), "--checkers", str(transfers)], env)


def tools(qa_deploy, rclone_bin):
    """Each tool by name: a function (server, prefix, target) -> Run."""
    # The 1 GiB object and its one authority are just over the default MaxTotalBytes.
    named = {"ours": lambda *a: ours(qa_deploy, *a, extra=("--max-total-bytes", str(2 << 30))), "s3sync": s3sync}
    for n in RCLONE_TRANSFERS:
        named[f"rclone{n}"] = lambda *a, n=n: rclone(rclone_bin, n, *a)
    return named


def best_rclone(medians):
    return min((name for name in medians if name.startswith("rclone")), key=lambda name: medians[name].seconds)


def median_run(runs):
    return Run(*(statistics.median(getattr(r, field) for r in runs) for field in ("seconds", "cpu", "rss")))


def compare(name, tools, server, prefix, runs, workdir):
    """Median Run of each tool, fresh folders, in an order that rotates from run to run."""
    results = {tool: [] for tool in tools}
    names = list(tools)
    for i in range(runs):
        for tool in names[i % len(names):] + names[:i % len(names)]:
            target = Path(tempfile.mkdtemp(dir=workdir))
            results[tool].append(tools[tool](server, prefix, target))
            subprocess.run(["rm", "-rf", str(target)], check=True)
    medians = {tool: median_run(r) for tool, r in results.items()}
    mine, s3, rc = medians["ours"], medians["s3sync"], best_rclone(medians)
    print(f"bench {name} server={server.name} ours_s={mine.seconds:.3f} s3sync_s={s3.seconds:.3f} "
          f"rclone_s={medians[rc].seconds:.3f} ratio={mine.seconds / s3.seconds:.2f} "
          f"ratio_rclone={mine.seconds / medians[rc].seconds:.2f} ours_cpu_s={mine.cpu:.3f} "
          f"s3sync_cpu_s={s3.cpu:.3f} rclone_cpu_s={medians[rc].cpu:.3f} rclone_transfers={rc[len('rclone'):]}",
          flush=True)
    return rc


def noop_reseed(tools, server, prefix, runs, workdir):
    """Each tool seeds its own folder, then re-seeds it `runs` times with nothing changed."""
    fields = []
    for tool in tools:
        seeded = Path(tempfile.mkdtemp(dir=workdir))
        tools[tool](server, prefix, seeded)
        before = server.object_gets()
        again = median_run([tools[tool](server, prefix, seeded) for _ in range(runs)])
        label = "rclone" if tool.startswith("rclone") else tool
        if before is not None:
            fields.append(f"{label}_gets={server.object_gets() - before}")
        fields.append(f"{label}_s={again.seconds:.3f} {label}_cpu_s={again.cpu:.3f}")
    print(f"bench noop_reseed server={server.name} {' '.join(fields)}", flush=True)


def big_object(tools, server, prefix, workdir):
    fields = []
    for tool in tools:
        target = Path(tempfile.mkdtemp(dir=workdir))
        once = tools[tool](server, prefix, target)
        label = "rclone" if tool.startswith("rclone") else tool
        fields.append(f"{label}_s={once.seconds:.1f} {label}_cpu_s={once.cpu:.1f} {label}_peak_rss_mb={once.rss:.0f}")
        subprocess.run(["rm", "-rf", str(target)], check=True)
    print(f"bench seed_1gib server={server.name} {' '.join(fields)}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qa-deploy", required=True)
    parser.add_argument("--s3s-fs", required=True)
    parser.add_argument("--rclone", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--servers", default="fast,moto", help="comma-separated: fast (s3s-fs), moto")
    args = parser.parse_args()
    real = ROOT.parent / "shared" / "fixtures" / "qa_server_config" / "authorities"
    if not real.is_dir():
        real = ROOT / "tests" / "fixtures" / "authorities"
        print(f"(the real configuration is absent; real_config uses {real})", flush=True)

    version = subprocess.run([args.rclone, "version"], capture_output=True, text=True, check=True).stdout
    print(f"(rclone: {version.splitlines()[0]})", flush=True)
    with tempfile.TemporaryDirectory(prefix="qa-seed-bench-") as scratch:
        workdir = Path(scratch)
        for name in args.servers.split(","):
            server = Server(name, args.s3s_fs, workdir)
            try:
                files = upload_folder(server, real, "real/")
                upload_generated(server, "gen/", 2000)
                every = tools(args.qa_deploy, args.rclone)
                compare(f"real_config_{files}_files", every, server, "real/", args.runs, workdir)
                rc = compare("files_2000", every, server, "gen/", args.runs, workdir)
                chosen = {tool: every[tool] for tool in ("ours", "s3sync", rc)}
                noop_reseed(chosen, server, "real/", args.runs, workdir)
                upload_big(server, "big/", workdir)
                big_object(chosen, server, "big/", workdir)
                server.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "big/big.bin"}, {"Key": "big/languages.yml"}]})
            finally:
                server.stop()


if __name__ == "__main__":
    main()
