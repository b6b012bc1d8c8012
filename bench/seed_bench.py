#!/usr/bin/env python3
"""`make bench`: `qa-deploy seed` against `aws s3 sync`, side by side, from the same local S3
server into fresh folders, alternating, median of --runs each.

(a) real_config: ../shared/fixtures/qa_server_config/ when present (else the repo's sample);
(b) files_2000: 2,000 generated files of 1-64 KB; (c) seed_1gib: one 1 GiB object, the peak RSS
of our process; (d) noop_reseed: a re-seed with nothing changed, its seconds and GETs.
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
        """GETs of objects (not listings) in moto's access log so far."""
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


def upload_generated(server, prefix, count):
    rng = random.Random(2026)
    for i in range(count):
        body = rng.randbytes(rng.randint(1024, 64 * 1024))
        server.s3.put_object(Bucket=BUCKET, Key=f"{prefix}{i // 100:02d}/file-{i:04d}.bin", Body=body)


def upload_big(server, prefix, workdir):
    big = workdir / "big.bin"
    with open(big, "wb") as out:
        chunk = os.urandom(1 << 20)
        for _ in range(1024):
            out.write(chunk)
    server.s3.upload_file(str(big), BUCKET, prefix + "big.bin")
    big.unlink()


def run(command, env):
    """Seconds, and the process's peak RSS in MB. The peak is read from /proc while it runs: the
    rusage of a child forked from this (large) Python process would report Python's pages."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{process.stderr.read().decode()}")
    return seconds, peak_kb / 1024


def ours(qa_deploy, server, prefix, target, extra=()):
    env = dict(os.environ, AWS_ENDPOINT_URL=server.endpoint, **CREDENTIALS)
    return run([qa_deploy, "seed", "--bucket", BUCKET, "--prefix", prefix, "--target", str(target), *extra], env)


def s3sync(server, prefix, target):
    env = dict(os.environ, **CREDENTIALS)
    return run([str(VENV_BIN / "aws"), "s3", "sync", f"s3://{BUCKET}/{prefix}", str(target),
                "--endpoint-url", server.endpoint, "--only-show-errors"], env)


def compare(name, qa_deploy, server, prefix, runs, workdir):
    times = {"ours": [], "s3sync": []}
    for i in range(runs):
        order = ["ours", "s3sync"] if i % 2 == 0 else ["s3sync", "ours"]
        for tool in order:
            target = Path(tempfile.mkdtemp(dir=workdir))
            seconds, _ = ours(qa_deploy, server, prefix, target) if tool == "ours" else s3sync(server, prefix, target)
            times[tool].append(seconds)
            subprocess.run(["rm", "-rf", str(target)], check=True)
    mine, theirs = statistics.median(times["ours"]), statistics.median(times["s3sync"])
    print(f"bench {name} server={server.name} ours_s={mine:.3f} s3sync_s={theirs:.3f} ratio={mine / theirs:.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qa-deploy", required=True)
    parser.add_argument("--s3s-fs", required=True)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    real = ROOT.parent / "shared" / "fixtures" / "qa_server_config"
    if not real.is_dir():
        real = ROOT / "tests" / "fixtures" / "authorities"
        print(f"(the real configuration is absent; real_config uses {real})", flush=True)

    with tempfile.TemporaryDirectory(prefix="qa-seed-bench-") as scratch:
        workdir = Path(scratch)
        for name in ["fast", "moto"]:
            server = Server(name, args.s3s_fs, workdir)
            try:
                files = upload_folder(server, real, "real/")
                upload_generated(server, "gen/", 2000)
                compare(f"real_config_{files}_files", args.qa_deploy, server, "real/", args.runs, workdir)
                compare("files_2000", args.qa_deploy, server, "gen/", args.runs, workdir)

                seeded = Path(tempfile.mkdtemp(dir=workdir))
                ours(args.qa_deploy, server, "real/", seeded)
                before = server.object_gets() if name == "moto" else None
                noop = statistics.median(ours(args.qa_deploy, server, "real/", seeded)[0] for _ in range(args.runs))
                gets = f"gets={server.object_gets() - before} " if name == "moto" else ""
                print(f"bench noop_reseed server={name} {gets}ours_s={noop:.3f}", flush=True)

                upload_big(server, "big/", workdir)
                target = Path(tempfile.mkdtemp(dir=workdir))
                seconds, rss = ours(args.qa_deploy, server, "big/", target)
                print(f"bench seed_1gib server={name} peak_rss_mb={rss:.0f} ours_s={seconds:.1f}", flush=True)
                subprocess.run(["rm", "-rf", str(target)], check=True)
                server.s3.delete_object(Bucket=BUCKET, Key="big/big.bin")
            finally:
                server.stop()


if __name__ == "__main__":
    main()
