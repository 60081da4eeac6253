"""A real DNS server for the lab: knotd inside the lab's AFTR namespace,
on its loopback (127.0.0.1, port 53053), with one dynamic zone and a TSIG
key (hmac-sha256) allowed to update it. pcpd's rfc2136 provider talks to
it; tests read the zone with kdig, exactly as a resolver would.

    knot = Knot(lab)           # writes knot.conf, the zone and the key files
    knot.start(); knot.stop()  # the journal keeps accepted updates across restarts
    knot.query("b4a.dyn.example.net", "A") -> ["203.0.113.10"]

The key file pcpd reads is mode 0600 (pcpd refuses anything else)."""
import base64
import os
import shutil
import subprocess
import time

ZONE = "dyn.example.net"
PORT = 53053
KEY = "pcpd-key"


def knotd_path():
    return shutil.which("knotd") or "/usr/sbin/knotd"


class Knot:
    def __init__(self, lab, secret=None):
        self.lab = lab
        self.dir = os.path.join(lab.dir, "knot")
        self.secret = secret or base64.b64encode(os.urandom(32)).decode()
        self.key_file = os.path.join(lab.dir, "tsig.key")
        self.proc = None
        self.log_path = os.path.join(self.dir, "knotd.log")
        os.makedirs(os.path.join(self.dir, "db"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "run"), exist_ok=True)
        with open(os.path.join(self.dir, ZONE + ".zone"), "w") as f:
            f.write("$ORIGIN %s.\n$TTL 300\n"
                    "@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60\n"
                    "@ NS ns.%s.\nns A 127.0.0.1\n" % (ZONE, ZONE, ZONE, ZONE))
        self.write_conf(self.secret)
        self.write_key(self.secret)
        lab.knots.append(self)

    def write_key(self, secret, mode=0o600):
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.write(fd, (secret + "\n").encode())
        os.close(fd)
        os.chmod(self.key_file, mode)

    def write_conf(self, secret):
        with open(os.path.join(self.dir, "knot.conf"), "w") as f:
            f.write("""server:
    rundir: "{d}/run"
    listen: 127.0.0.1@{port}
database:
    storage: "{d}/db"
log:
  - target: "{d}/knotd.log"
    any: info
key:
  - id: {key}
    algorithm: hmac-sha256
    secret: {secret}
acl:
  - id: pcpd-update
    key: {key}
    action: update
    update-type: [A, SRV, TXT]
template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: {zone}.
    file: {zone}.zone
    acl: pcpd-update
""".format(d=self.dir, port=PORT, key=KEY, secret=secret, zone=ZONE))

    def provider(self, **over):
        """The pcpd.conf provider block for this server."""
        p = {"type": "rfc2136", "server": "127.0.0.1", "port": PORT, "zone": ZONE,
             "key-name": KEY, "key-algorithm": "hmac-sha256", "key-file": self.key_file,
             "timeout-ms": 1000, "backoff-min-ms": 200, "backoff-max-ms": 1000}
        p.update(over)
        return p

    def start(self):
        if self.proc and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.lab.ns["aftr"], knotd_path(),
                                      "-c", os.path.join(self.dir, "knot.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("knotd exited: %s" % self.log())
            if self.soa_serial() is not None:
                return
            time.sleep(0.1)
        raise RuntimeError("knotd did not answer within 15 s: %s" % self.log())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def query(self, name, rtype):
        """Answer RDATA strings (sorted), [] when none."""
        r = self.lab.run("aftr", "kdig", "@127.0.0.1", "-p", str(PORT), "+norec", "+short",
                         "+time=1", "+retry=0", name, rtype, check=False, timeout=10)
        if r.returncode != 0:
            return None
        return sorted(line.strip() for line in r.stdout.splitlines() if line.strip())

    def soa_serial(self):
        a = self.query(ZONE, "SOA")
        if not a:
            return None
        return int(a[0].split()[2])
