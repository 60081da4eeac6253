"""Lab tests of the DDNS hook against a real DNS server: knotd in the
AFTR namespace (tests/lab/dnslab.py) with a TSIG key and a dynamic zone,
pcpd's rfc2136 provider updating it, kdig reading it back.

  TestDDNS   one lab, both B4s (both hosts 192.168.1.2) behind one binding
             template "{name}.dyn.example.net" (A + SRV _http._tcp for
             internal TCP 80 + TXT) and a provider with a wrong key:
             MAP -> A/SRV/TXT visible (time measured and printed), an
             Internet host connects to the port the SRV names; delete and
             expiry remove them; refreshes send nothing; knotd down then up
             -> the update lands once; pcpd killed in between -> same;
             wrong key -> permanent, one attempt, reset retries once;
             runtime bindings survive a restart and withdraw their records;
             a webhook provider posts signed JSON to a local HTTPS server
             with its own CA (tests/ddns/https_server.py).

Run: sudo PCPD_BUILD=build /usr/bin/python3 tests/lab/run.py test_ddns.py"""
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import json                                                            # noqa: E402
import hashlib                                                         # noqa: E402
import hmac                                                            # noqa: E402
import subprocess                                                      # noqa: E402
import lab as L                                                        # noqa: E402
import dnslab                                                          # noqa: E402
from test_lab import Client, LabCase                                   # noqa: E402
from pcp_scapy import TCP                                              # noqa: E402

Z = dnslab.ZONE


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("lab tests need root (network namespaces, nftables)")
    for tool in (dnslab.knotd_path(), shutil.which("kdig")):
        if not tool or not os.access(tool, os.X_OK):
            raise unittest.SkipTest("knotd and kdig are needed (Debian packages knot, knot-dnsutils)")


def wait_for(fn, timeout=10.0, step=0.02):
    """fn() until truthy; returns (value, seconds waited) or (last, None)."""
    t0 = time.monotonic()
    v = None
    while time.monotonic() - t0 < timeout:
        v = fn()
        if v:
            return v, time.monotonic() - t0
        time.sleep(step)
    return v, None


class TestDDNS(LabCase):
    knot = None

    @classmethod
    def setUpClass(cls):
        cls.lab = L.Lab(server={"min-lifetime": 2})
        try:
            cls.lab.start(pcpd=False)
            cls.knot = dnslab.Knot(cls.lab)
            cls.knot.start()
            bad = os.path.join(cls.lab.dir, "wrong.key")
            fd = os.open(bad, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
            os.close(fd)
            # a webhook receiver: HTTPS with the lab's own CA, in the AFTR namespace
            pki = os.path.join(cls.lab.dir, "pki")
            L.sh("sh", os.path.join(L.TOP, "tests/ddns/mkca.sh"), pki)
            cls.hook_log = os.path.join(cls.lab.dir, "hook.jsonl")
            cls.https = subprocess.Popen(
                ["ip", "netns", "exec", cls.lab.ns["aftr"], "/usr/bin/python3",
                 os.path.join(L.TOP, "tests/ddns/https_server.py"), "--port", "0",
                 "--cert", os.path.join(pki, "server.pem"), "--key", os.path.join(pki, "server.key"),
                 "--log", cls.hook_log], stdout=subprocess.PIPE, text=True)
            https_port = int(cls.https.stdout.readline())
            cls.hmac_key = os.path.join(cls.lab.dir, "hook.key")
            fd = os.open(cls.hmac_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, b"lab-webhook-key\n")
            os.close(fd)
            cls.lab.ddns = {
                "debounce-ms": int(os.environ.get("PCPD_LAB_DEBOUNCE_MS", "200")),
                "startup-grace": 2,
                "provider": {"knot": cls.knot.provider(),
                             "wrongkey": cls.knot.provider(**{"key-file": bad}),
                             "hook": {"type": "webhook", "url": "https://127.0.0.1:%d/hook" % https_port,
                                      "ca-file": os.path.join(pki, "ca.pem"),
                                      "hmac-key-file": cls.hmac_key, "timeout-ms": 2000}},
                "binding": {
                    "{name}.dyn.example.net": {"provider": "knot", "subscribers": "2001:db8:100::/48",
                                               "srv": ["_http._tcp=80"], "txt": "pcpd lab"},
                    "ssh.b4b.dyn.example.net": {"provider": "wrongkey", "subscriber": "b4b",
                                                "srv": ["_ssh._tcp=22"]},
                    "web.b4a.example.org": {"provider": "hook", "subscriber": "b4a",
                                            "srv": ["_http._tcp=80"]},
                },
            }
            cls.lab.start_pcpd()
            cls.start_servers()
        except BaseException:
            cls.lab.keep_log = True
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        https = getattr(cls, "https", None)
        if https:
            https.terminate()
            https.wait(10)
            cls.https = None
        super().tearDownClass()

    def hook_posts(self):
        try:
            with open(self.hook_log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []

    # -- helpers ----------------------------------------------------------
    def client(self, b4, mode="plain"):
        c = Client(self.lab, b4, mode)
        self.clients.append(c)
        return c

    def status(self, name):
        for o in self.lab.pcpctl("ddns", "status", name, json_out=True):
            if o.get("name") == name:
                return o
        return None

    def provider(self, name):
        for o in self.lab.pcpctl("ddns", "providers", name, json_out=True):
            if o.get("name") == name:
                return o
        return None

    def stats(self):
        return [o for o in self.lab.pcpctl("stats", json_out=True) if "ddns" in o][0]["ddns"]

    def srv(self, b4):
        return self.knot.query("_http._tcp.%s.%s" % (b4, Z), "SRV")

    def published(self, b4, port):
        want = ["0 0 %d %s.%s." % (port, b4, Z)]
        return self.srv(b4) == want and self.knot.query("%s.%s" % (b4, Z), "A") == [self.lab.ext_addr(b4)]

    def settled(self, name):
        """The hook has nothing due for name (published equals desired)."""
        st = self.status(name)
        return st is not None and st["state"] == "idle"

    # -- tests ------------------------------------------------------------
    def test_1_map_publishes_a_srv_txt(self):
        lab = self.lab
        ca, cb = self.client("b4a"), self.client("b4b", "encap")
        ra = ca.map(TCP, 80, lifetime=600)
        t_a = time.monotonic()
        rb = cb.map(TCP, 80, lifetime=600)
        t_b = time.monotonic()
        self.assertEqual(ra.result, 0)
        self.assertEqual(rb.result, 0)
        self.assertNotEqual(ra.ext_port, rb.ext_port)
        _, da = wait_for(lambda: self.published("b4a", ra.ext_port))
        seen_a = time.monotonic()
        self.assertIsNotNone(da, "b4a: SRV %s, A %s" % (self.srv("b4a"), self.knot.query("b4a." + Z, "A")))
        _, db = wait_for(lambda: self.published("b4b", rb.ext_port))
        seen_b = time.monotonic()
        self.assertIsNotNone(db, "b4b: SRV %s" % self.srv("b4b"))
        # a figure, not a threshold: each kdig poll takes a few ms itself
        print("\nMAP response -> A+SRV visible in knotd: b4a %.0f ms, b4b %.0f ms (debounce-ms %s)"
              % (1000 * (seen_a - t_a), 1000 * (seen_b - t_b), self.lab.ddns["debounce-ms"]), file=sys.stderr)
        self.assertEqual(self.knot.query("b4a." + Z, "TXT"), ['"pcpd lab"'])
        # the SRV's port really reaches b4a's host, the other one b4b's
        for b4 in ("b4a", "b4b"):
            port = int(self.srv(b4)[0].split()[2])
            s = lab.tcp_connect("inet", (lab.ext_addr(b4), port))
            self.socks.append(s)
            s.settimeout(5)
            self.assertIn(("hello from %s " % b4).encode(), s.recv(200))
        # the same mapping reached the webhook: signed JSON over verified TLS
        posts, t = wait_for(lambda: [p for p in self.hook_posts() if p.get("method") == "POST"])
        self.assertIsNotNone(t, "no webhook POST: %s" % self.status("web.b4a.example.org"))
        post = posts[-1]
        body = json.loads(post["body"])
        self.assertEqual((body["event"], body["name"], body["subscriber"], body["address"]),
                         ("created", "web.b4a.example.org", "b4a", lab.ext_addr("b4a")))
        self.assertEqual([(m["service"], m["protocol"], m["internal_port"], m["port"]) for m in body["mappings"]],
                         [("_http._tcp", "tcp", 80, ra.ext_port)])
        headers = {k.lower(): v for k, v in post["headers"].items()}
        want = hmac.new(b"lab-webhook-key", post["body"].encode("latin-1"), hashlib.sha256).hexdigest()
        self.assertEqual(headers["x-pcpd-signature"], "sha256=" + want)
        st = self.status("b4a." + Z)
        self.assertEqual(st["last_result"], "NOERROR")
        self.assertIn("SRV _http._tcp %d" % ra.ext_port, st["published"])

    def test_2_refresh_burst_sends_nothing(self):
        c = self.client("b4a")
        r = c.map(TCP, 80, lifetime=600)
        wait_for(lambda: self.published("b4a", r.ext_port) and self.settled("b4a." + Z))
        serial, sent = self.knot.soa_serial(), self.stats()["updates_sent"]
        for _ in range(20):
            self.assertEqual(c.map(TCP, 80, lifetime=600).ext_port, r.ext_port)
        time.sleep(1.0)                  # several debounce periods
        self.assertEqual(self.stats()["updates_sent"], sent)
        self.assertEqual(self.knot.soa_serial(), serial)

    def test_3_delete_and_expiry_remove(self):
        c = self.client("b4a")
        r = c.map(TCP, 80, lifetime=600)
        wait_for(lambda: self.published("b4a", r.ext_port))
        self.assertEqual(c.map(TCP, 80, lifetime=0).result, 0)
        v, t = wait_for(lambda: self.srv("b4a") == [] and self.knot.query("b4a." + Z, "A") == [])
        self.assertIsNotNone(t, "SRV after delete: %s" % self.srv("b4a"))
        self.assertEqual(self.knot.query("b4a." + Z, "TXT"), [])
        # expiry: a 3 s mapping
        r = c.map(TCP, 80, lifetime=3)
        self.assertEqual(r.lifetime, 3)
        _, t = wait_for(lambda: self.published("b4a", r.ext_port))
        self.assertIsNotNone(t)
        _, t = wait_for(lambda: self.srv("b4a") == [], timeout=15)
        self.assertIsNotNone(t, "SRV after expiry: %s" % self.srv("b4a"))

    def test_4_dns_down_then_up_lands_once(self):
        c = self.client("b4a")
        r = c.map(TCP, 80, lifetime=600)
        wait_for(lambda: self.published("b4a", r.ext_port) and self.settled("b4a." + Z))
        serial = self.knot.soa_serial()
        self.knot.stop()
        ok_before = self.provider("knot")["ok"]
        self.assertEqual(c.map(TCP, 80, lifetime=0).result, 0)
        r2 = c.map(TCP, 80, lifetime=600, nonce=b"\x33" * 12)
        self.assertNotEqual(r2.ext_port, r.ext_port)     # hold-down: a new port
        st, t = wait_for(lambda: (lambda s: s if s and s["attempts"] >= 2 else None)(self.status("b4a." + Z)))
        self.assertIsNotNone(t, "no retries while knotd is down: %s" % self.status("b4a." + Z))
        self.assertEqual(st["last_class"], "transient")
        self.knot.start()
        _, t = wait_for(lambda: self.published("b4a", r2.ext_port) and self.settled("b4a." + Z), timeout=15)
        self.assertIsNotNone(t, "not published after knotd came back: %s" % self.status("b4a." + Z))
        time.sleep(1.0)
        self.assertEqual(self.provider("knot")["ok"], ok_before + 1, "landed more than once")
        self.assertEqual(self.knot.soa_serial(), serial + 1)

    def test_5_pcpd_restart_in_between(self):
        lab = self.lab
        c = self.client("b4a")
        r = c.map(TCP, 80, lifetime=600, nonce=b"\x33" * 12)
        wait_for(lambda: self.published("b4a", r.ext_port) and self.settled("b4a." + Z))
        serial = self.knot.soa_serial()
        self.knot.stop()
        self.assertEqual(c.map(TCP, 80, lifetime=0, nonce=b"\x33" * 12).result, 0)
        r2 = c.map(TCP, 80, lifetime=600, nonce=b"\x44" * 12)
        time.sleep(0.5)                  # the update fails at least once
        lab.kill_pcpd()
        lab.start_pcpd()
        self.knot.start()
        _, t = wait_for(lambda: self.published("b4a", r2.ext_port) and self.settled("b4a." + Z), timeout=15)
        self.assertIsNotNone(t, "not published after restart: %s" % self.status("b4a." + Z))
        time.sleep(1.0)
        self.assertEqual(self.knot.soa_serial(), serial + 1, "landed more than once")
        # a clean restart with nothing changed sends nothing
        lab.stop_pcpd()
        lab.start_pcpd()
        time.sleep(1.5)
        self.assertEqual(self.knot.soa_serial(), serial + 1)
        self.assertEqual(self.stats()["updates_sent"], 0)

    def test_6_wrong_key_is_permanent(self):
        name = "ssh.b4b." + Z
        c = self.client("b4b", "encap")
        self.assertEqual(c.map(TCP, 22, lifetime=600).result, 0)
        p, t = wait_for(lambda: (lambda p: p if p and p["state"] == "stopped" else None)(self.provider("wrongkey")))
        self.assertIsNotNone(t, "wrongkey provider not stopped: %s" % self.provider("wrongkey"))
        self.assertRegex(p["reason"], "BADSIG|BADKEY|NOTAUTH")
        self.assertEqual(p["sent"], 1)
        # more changes, time: still one attempt, nothing in a loop
        self.assertEqual(c.map(TCP, 22, lifetime=0).result, 0)
        self.assertEqual(c.map(TCP, 22, lifetime=600, nonce=b"\x55" * 12).result, 0)
        time.sleep(2.0)
        self.assertEqual(self.provider("wrongkey")["sent"], 1)
        self.assertEqual(self.status(name)["state"], "stopped")
        self.assertEqual(self.knot.query("_ssh._tcp." + name, "SRV"), [])
        # the other provider is unaffected
        self.assertEqual(self.provider("knot")["state"], "active")
        out = self.lab.pcpctl("ddns", "reset", "wrongkey", json_out=True)
        self.assertGreaterEqual(out[0]["reset"], 1)
        _, t = wait_for(lambda: self.provider("wrongkey")["sent"] == 2 and
                        self.provider("wrongkey")["state"] == "stopped")
        self.assertIsNotNone(t, "reset did not retry once: %s" % self.provider("wrongkey"))
        # the secret never shows
        secret = open(os.path.join(self.lab.dir, "wrong.key")).read().strip()
        self.assertNotIn(secret, self.lab.log())
        self.assertNotIn(self.knot.secret, self.lab.log())

    def test_7_runtime_binding(self):
        lab = self.lab
        name = "files.b4a." + Z
        lab.pcpctl("ddns", "add", name, "provider", "knot", "subscriber", "b4a", "srv", "_ftp._tcp=21")
        c = self.client("b4a")
        r = c.map(TCP, 21, lifetime=600)
        want = ["0 0 %d %s." % (r.ext_port, name)]
        _, t = wait_for(lambda: self.knot.query("_ftp._tcp." + name, "SRV") == want)
        self.assertIsNotNone(t, self.status(name))
        lab.stop_pcpd()
        lab.start_pcpd()
        b = [o for o in lab.pcpctl("ddns", "bindings", name, json_out=True) if o.get("name") == name]
        self.assertEqual(len(b), 1)
        self.assertEqual(b[0]["source"], "runtime")
        self.assertEqual(b[0]["srv"], ["_ftp._tcp=21"])
        # a config binding cannot be removed at run time; a runtime one can
        _, end = lab.ctl_request("ddns-del", {"name": "{name}.dyn.example.net"})
        self.assertFalse(end["ok"])
        self.assertIn("pcpd.conf", end["error"])
        lab.pcpctl("ddns", "del", name)
        _, t = wait_for(lambda: self.knot.query("_ftp._tcp." + name, "SRV") == [] and
                        self.knot.query(name, "A") == [])
        self.assertIsNotNone(t, "records of a removed binding stay")
        c.map(TCP, 21, lifetime=0)


class TestSecretMode(unittest.TestCase):
    """pcpd refuses to start when a TSIG key file is group/world-readable."""

    def test_group_readable_key_refused(self):
        lab = L.Lab(b4s=("b4a",))
        try:
            lab.start(pcpd=False)
            knot = dnslab.Knot(lab)
            knot.write_key(knot.secret, 0o640)
            lab.ddns = {"provider": {"knot": knot.provider()},
                        "binding": {"a.dyn.example.net": {"provider": "knot", "subscriber": "b4a"}}}
            lab.write_conf()
            r = L.sh(lab.pcpd_bin, "-n", lab.conf_path, check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("lets group or others", r.stderr)
            lab.start_pcpd(wait=False)
            rc = lab.proc.wait(15)
            self.assertNotEqual(rc, 0)
            self.assertIn("lets group or others", lab.log())
            self.assertNotIn(knot.secret, lab.log())
            lab.proc = None
        finally:
            lab.stop()
