"""Soak the demo chain in a real Envoy; see scripts/soak.sh. Standard library + PyJWT."""
import argparse, base64, http.client, json, os, random, re, signal, socket, subprocess
import sys, tempfile, threading, time, urllib.request

import jwt  # PyJWT, installed in .venv by scripts/setup.sh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_SECONDS = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(ports):
    text = open(os.path.join(ROOT, "envoy-configs/demo.yaml")).read()
    for old, new in ports.items():
        text = text.replace(f"port_value: {old}", f"port_value: {new}")
    text = text.replace("address: 0.0.0.0", "address: 127.0.0.1")
    return text


def hmac_key():
    k = open(os.path.join(ROOT, "filters/jwt-auth/testdata/hmac.key")).read().strip()
    return base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))


def valid_token(n, key):
    now = int(time.time())
    claims = {"iss": "https://issuer.example.com", "aud": "api.example.com",
              "sub": f"soak-{n}", "iat": now, "exp": now + 3600}
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": "hs-1"})


def hostile(rng):
    junk = lambda n: "".join(rng.choice("abcXYZ019-._~!$&'()*+,;=:@%") for _ in range(rng.randrange(n)))
    kind = rng.randrange(6)
    if kind == 0:
        return "/secure/x", {"authorization": "Bearer " + junk(400)}
    if kind == 1:
        big = base64.urlsafe_b64encode(b"{" * rng.randrange(1, 30000)).decode().rstrip("=")
        return "/secure/x", {"authorization": f"Bearer eyJhbGciOiJIUzI1NiJ9.{big}.c2ln"}
    if kind == 2:
        return "/admin/" + junk(200), {}
    if kind == 3:
        return "/api/" + junk(300), {"x-request-id": junk(2000), "x-internal-user": junk(50)}
    if kind == 4:
        return "/secure/x?access_token=" + junk(100), {"cookie": junk(4000)}
    return "/" + junk(50), {f"x-h{i}": junk(100) for i in range(rng.randrange(80))}


class Load(threading.Thread):
    def __init__(self, port, seed, stop, counts):
        super().__init__(daemon=True)
        self.port, self.rng, self.stop, self.counts = port, random.Random(seed), stop, counts
        self.key, self.seed = hmac_key(), seed

    def run(self):
        n = 0
        conn = None
        while not self.stop.is_set():
            n += 1
            if n % 3 == 0:
                path, headers = "/secure/x", {"authorization": "Bearer " + valid_token(f"{self.seed}-{n}", self.key)}
            else:
                path, headers = hostile(self.rng)
            headers["host"] = "api.example.com"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                key = resp.status
                if resp.getheader("connection", "").lower() == "close":
                    conn.close(); conn = None
            except Exception as e:  # a reset or a refused request line: count and reconnect
                key = type(e).__name__
                conn = None
            self.counts[key] = self.counts.get(key, 0) + 1


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def vm_memories_kib(pid):
    """Resident KiB of each V8 wasm memory. V8 reserves 8 GiB or more of address space per
    wasm memory and commits its pages read-write from the start, so a memory shows as an
    anonymous rw mapping followed by the PROT_NONE rest of its reservation."""
    vmas = []
    for line in open(f"/proc/{pid}/smaps"):
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(\S*)", line)
        if m:
            anon = m.group(4) == "0" and m.group(5) == ""
            vmas.append([int(m.group(1), 16), int(m.group(2), 16), m.group(3), anon, 0])
        elif line.startswith("Rss:") and vmas:
            vmas[-1][4] = int(line.split()[1])
    out = []
    for this, rest in zip(vmas, vmas[1:]):
        if (this[2].startswith("rw") and this[3] and rest[3] and rest[2].startswith("---")
                and rest[0] == this[1] and rest[1] - this[0] >= (8 << 30)
                and (this[1] - this[0]) % 65536 == 0):
            out.append(this[4])
    return out


def heap_bytes(admin):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=server.memory_allocated&format=json", timeout=5) as r:
        for s in json.load(r)["stats"]:
            if s["name"] == "server.memory_allocated":
                return int(s["value"])
    return 0


def slope(points):
    """Least-squares slope of (minute, value) points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points) or 1.0
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    ports = {10000: free_port(), 9901: free_port(), 8080: free_port()}
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(config(ports)); cfg.close()
    log = open(os.path.join(tempfile.gettempdir(), f"soak-envoy-{os.getpid()}.log"), "w")
    envoy = subprocess.Popen([os.path.join(ROOT, ".venv/bin/envoy"), "-c", cfg.name, "--concurrency", "2",
                              "--disable-hot-restart", "--log-level", "warn", "--base-id", str(os.getpid() % 60000)],
                             cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        admin = ports[9901]
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1).read(); break
            except Exception:
                if envoy.poll() is not None:
                    sys.exit(f"soak: Envoy exited; see {log.name}")
                time.sleep(0.1)
        stop, counts = threading.Event(), {}
        loads = [Load(ports[10000], i, stop, counts) for i in range(args.threads)]
        for t in loads:
            t.start()
        start, samples = time.time(), []
        end = start + args.minutes * 60
        while True:
            minute = (time.time() - start) / 60
            sample = (minute, rss_kib(envoy.pid), heap_bytes(admin) // 1024, vm_memories_kib(envoy.pid))
            samples.append(sample)
            print(f"soak: {minute:5.1f} min  rss {sample[1]} KiB  heap {sample[2]} KiB  "
                  f"vm memories {sample[3]} KiB  requests {sum(counts.values())}", flush=True)
            if time.time() >= end:
                break
            time.sleep(min(SAMPLE_SECONDS, max(0.0, end - time.time())))
        stop.set()
        for t in loads:
            t.join(timeout=15)
        # Slopes after the first sample (warm-up: VMs created, caches filling).
        steady = samples[1:] if len(samples) > 2 else samples
        print(f"soak: {sum(counts.values())} requests in {args.minutes} min, answers {dict(sorted(counts.items(), key=str))}")
        print(f"soak: slope rss  {slope([(s[0], s[1]) for s in steady]):+.1f} KiB/min")
        print(f"soak: slope heap {slope([(s[0], s[2]) for s in steady]):+.1f} KiB/min")
        vms = min(len(s[3]) for s in steady)
        for i in range(vms):
            print(f"soak: slope vm memory #{i} {slope([(s[0], s[3][i]) for s in steady]):+.1f} KiB/min "
                  f"({steady[0][3][i]} -> {steady[-1][3][i]} KiB)")
    finally:
        os.killpg(envoy.pid, signal.SIGTERM)
        envoy.wait(timeout=10)
        os.unlink(cfg.name)


if __name__ == "__main__":
    main()
