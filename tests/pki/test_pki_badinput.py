#!/usr/bin/env python3
"""Bad input to mtlsctl: a clear error, exit code 2, and nothing written.

"Nothing written" is checked with a digest of every name, mode and byte in
the CA directory before and after the failing command.
"""
import fcntl
import os
import resource
import signal
import subprocess
import re
import stat
import unittest

from pkitest import MAKE_FIXTURES, MTLSCTL, PASS, PkiDirTest, ctl, dir_digest, run


class TestBadInput(PkiDirTest):
    def assert_refused(self, args, message, env=None):
        before = dir_digest(self.dir)
        p = ctl(*args, env=env)
        self.assertEqual(p.returncode, 2, f"{args}: {p.stdout}{p.stderr}")
        self.assertIn(message, p.stderr)
        self.assertEqual(dir_digest(self.dir), before, f"{args} changed the CA directory")
        return p

    def test_pki_badinput_wrong_passphrase(self):
        self.assert_refused(["pki", "crl", "--dir", self.dir], "wrong passphrase",
                            env={"MTLS_CA_PASS": "not-the-passphrase"})
        # Twin: the right passphrase works (and does write).
        before = dir_digest(self.dir)
        p = ctl("pki", "crl", "--dir", self.dir, env={"MTLS_CA_PASS": PASS})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotEqual(dir_digest(self.dir), before)

    def test_pki_badinput_passphrase_file_mode(self):
        path = os.path.join(self.tmp.name, "pass")
        with open(path, "w") as f:
            f.write(PASS + "\n")
        os.chmod(path, 0o644)
        self.assert_refused(["pki", "crl", "--dir", self.dir, "--passphrase-file", path],
                            "chmod 600")
        os.chmod(path, 0o600)
        p = ctl("pki", "crl", "--dir", self.dir, "--passphrase-file", path)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_pki_badinput_passphrase_never_from_argv(self):
        self.assert_refused(["pki", "crl", "--dir", self.dir, "--passphrase", PASS], "usage:")

    def corrupt(self, path, mutate):
        with open(path) as f:
            good = f.read()
        with open(path, "w") as f:
            f.write(mutate(good))
        return good

    def test_pki_badinput_corrupted_index(self):
        index = os.path.join(self.dir, "issuing", "index.txt")
        _, _ = self.issue("client", "one")
        cases = {
            "garbage": lambda t: t.replace("\tCN=one", "CN=one"),
            "truncated": lambda t: t[: t.rindex("end")],
            "bad state": lambda t: t.replace("\nV\t", "\nX\t"),
            "bad count": lambda t: re.sub(r"end (\d+)", lambda m: f"end {int(m[1]) + 1}", t),
        }
        for name, mutate in cases.items():
            with self.subTest(corruption=name):
                good = self.corrupt(index, mutate)
                with open(index) as f:
                    self.assertNotEqual(f.read(), good, "the corruption must change the file")
                try:
                    p = self.assert_refused(["pki", "issue", "client", "two", "--dir", self.dir],
                                            "index.txt: line")
                    self.assertIn("restore it from your backup", p.stderr)
                    self.assert_refused(["pki", "revoke", "01", "--reason", "superseded",
                                         "--dir", self.dir], "index.txt: line")
                finally:
                    with open(index, "w") as f:
                        f.write(good)
        self.issue("client", "two")  # twin: the restored record works

    def test_pki_badinput_serial_not_found(self):
        self.assert_refused(["pki", "revoke", "01:02:03:04:05:06:07:08", "--reason",
                             "keyCompromise", "--dir", self.dir], "not issued by any CA")
        self.assert_refused(["pki", "revoke", "zz:top", "--reason", "keyCompromise",
                             "--dir", self.dir], "expected hex")
        serial, _ = self.issue("client", "rev")
        self.assert_refused(["pki", "revoke", serial, "--reason", "noSuchReason",
                             "--dir", self.dir], "--reason noSuchReason")
        p = ctl("pki", "revoke", serial, "--reason", "superseded", "--dir", self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_refused(["pki", "revoke", serial, "--reason", "superseded",
                             "--dir", self.dir], "already revoked")

    def test_pki_badinput_unknown_option(self):
        for args in (["pki", "init", self.dir + "-new", "--bogus"],
                     ["pki", "issue", "client", "x", "--dir", self.dir, "--bogus"],
                     ["pki", "revoke", "01", "--reason", "superseded", "--dir", self.dir,
                      "--bogus"],
                     ["pki", "crl", "--dir", self.dir, "--bogus"],
                     ["cert", "check", "x.pem", "--ca", "y.pem", "--bogus"],
                     ["cert", "inspect", "--bogus", "x.pem"]):
            with self.subTest(args=args):
                self.assert_refused(args, "unrecognized option '--bogus'",
                                    env={"MTLS_CA_PASS": PASS})
        self.assertFalse(os.path.exists(self.dir + "-new"))

    def test_pki_badinput_unknown_command(self):
        self.assert_refused(["pki", "frobnicate"], "unknown command 'pki frobnicate'")
        self.assert_refused(["frobnicate"], "unknown command 'frobnicate'")
        p = ctl()
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage: mtlsctl", p.stderr)
        p = ctl("help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("pki issue", p.stdout)
        for cmd in (["pki", "init"], ["pki", "issue"], ["pki", "revoke"], ["pki", "crl"],
                    ["pki", "list"], ["cert", "inspect"],
                    ["cert", "check"]):
            with self.subTest(cmd=cmd):
                self.assertIn(" ".join(cmd), p.stdout)
                h = ctl(*cmd, "--help")
                self.assertEqual(h.returncode, 0, h.stderr)
                self.assertTrue(h.stdout.startswith(f"usage: mtlsctl {' '.join(cmd)} "))
                self.assertRegex(h.stdout, r"\n\n  \S")  # arguments and options described

    def test_pki_badinput_test_options_need_test_mode(self):
        for args in (["--test-eku", "server"], ["--test-not-after", "-86400"],
                     ["--test-serial", "01"], ["--test-ca-leaf"], ["--key", "rsa-1024"]):
            with self.subTest(args=args):
                self.assert_refused(["pki", "issue", "client", "t", "--dir", self.dir, *args], "")
        p = ctl("pki", "issue", "client", "t", "--dir", self.dir, "--test-eku", "server",
                env={"MTLSCTL_TEST": "1"})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_pki_badinput_bad_names(self):
        self.assert_refused(["pki", "issue", "server", "s", "--dir", self.dir], "--dns or --ip")
        self.assert_refused(["pki", "issue", "server", "s", "--dir", self.dir, "--dns",
                             "a,DNS:evil.example"], "is not a DNS name")
        self.assert_refused(["pki", "issue", "server", "s", "--dir", self.dir, "--ip",
                             "300.1.1.1"], "not an IPv4 or IPv6")
        self.assert_refused(["pki", "issue", "client", "c", "--dir", self.dir, "--uri",
                             "spiffe://nopath"], "spiffe://trust.domain/path")
        self.assert_refused(["pki", "issue", "client", "../escape", "--dir", self.dir], "NAME")

    def test_pki_badinput_spiffe_id_rules(self):
        # The SPIFFE ID rules mtlsd applies (lib/spiffe_id.c), each named;
        # nothing is written, so the name stays free: the twin with a valid
        # ID is issued under it without --replace.
        for uri, rule in (("spifee://acme.example/app", "the scheme is not 'spiffe'"),
                          ("SPIFFE://acme.example/app", "'spiffe' in lower case"),
                          ("spiffe://Acme.Example/app", "the trust domain must be lower case"),
                          ("spiffe://acme.example/app/", "no trailing '/'"),
                          ("spiffe://acme.example//app", "empty path segment"),
                          ("spiffe://acme.example/a/../b", "'.' and '..'"),
                          ("spiffe://acme.example/a%2Fb", "percent-encoding"),
                          ("spiffe://acme.example:443/app", "no port"),
                          ("spiffe://acme.example/app?x", "query")):
            with self.subTest(uri=uri):
                p = self.assert_refused(["pki", "issue", "client", "svid", "--dir", self.dir,
                                         "--uri", uri], rule)
                self.assertIn(f"'{uri}' is not a SPIFFE ID", p.stderr)
        self.issue("client", "svid", "--uri", "spiffe://acme.example/app")
        # Other schemes are not SPIFFE's business.
        self.issue("client", "urn", "--uri", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66")

    def test_pki_badinput_failed_write_leaves_name_free(self):
        # Writing the leaf fails after the key was written (chain.pem is a
        # directory): cert.pem, which makes the name taken, is written
        # last and the files of the failed run are removed, so the same
        # name is issued again without --replace once the cause is gone.
        blocker = os.path.join(self.dir, "issued", "blocked", "chain.pem")
        os.makedirs(blocker)
        p = ctl("pki", "issue", "client", "blocked", "--dir", self.dir)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("the name is free to issue again", p.stderr)
        self.assertEqual(os.listdir(os.path.dirname(blocker)), ["chain.pem"])
        os.rmdir(blocker)
        self.issue("client", "blocked")

    def test_pki_badinput_fixtures_refuse_foreign_dir(self):
        # make_fixtures empties its DIR on every run: never one it did not make.
        env = {"MTLS_FIXTURE_PASS": "fixture-passphrase"}
        before = dir_digest(self.dir)
        for args, message, e in (([self.dir], "not made by make_fixtures", env),
                                 ([self.dir + "-fx"], "MTLS_FIXTURE_PASS", None)):
            with self.subTest(args=args):
                p = run(MAKE_FIXTURES, *args, env=e)
                self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
                self.assertIn(message, p.stderr)
        self.assertEqual(dir_digest(self.dir), before)
        self.assertFalse(os.path.exists(self.dir + "-fx"))

    def test_pki_badinput_no_fixtures_command_installed(self):
        # The installed mtlsctl has no command that makes bad certificates:
        # the fixtures come from a test helper.
        env = {"MTLS_FIXTURE_PASS": "fixture-passphrase"}
        self.assert_refused(["pki", "fixtures", self.dir + "-fx"], "unknown command 'pki fixtures'",
                            env=env)
        self.assertFalse(os.path.exists(self.dir + "-fx"))
        self.assertNotIn("fixtures", ctl("help").stdout)

    def test_pki_badinput_init_bad_name(self):
        for name in ("x" * 41, "", "tab\there"):
            with self.subTest(name=name):
                p = ctl("pki", "init", self.dir + "-name", "--name", name, env=self.env)
                self.assertEqual(p.returncode, 2)
                self.assertIn("--name", p.stderr)
                self.assertFalse(os.path.exists(self.dir + "-name"))
        p = ctl("pki", "init", self.dir + "-name", "--name", "x" * 40, env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_pki_badinput_init_weak_passphrase(self):
        p = ctl("pki", "init", self.dir + "-weak", env={"MTLS_CA_PASS": "short"})
        self.assertEqual(p.returncode, 2)
        self.assertIn("shorter than", p.stderr)
        self.assertFalse(os.path.exists(self.dir + "-weak"))
        p = ctl("pki", "init", self.dir + "-nopass")
        self.assertEqual(p.returncode, 2)
        self.assertIn("MTLS_CA_PASS is not set", p.stderr)

    def test_pki_badinput_concurrent_run_refused(self):
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.assert_refused(["pki", "issue", "client", "l", "--dir", self.dir],
                                "another mtlsctl is working on this CA")
        finally:
            os.close(fd)
        self.issue("client", "l")

    def test_pki_badinput_crash_mid_write_keeps_record(self):
        # RLIMIT_FSIZE makes the kernel kill mtlsctl (SIGXFSZ) in the middle of
        # writing the new record: a real crash at the worst moment.
        index = os.path.join(self.dir, "issuing", "index.txt")
        serial, _ = self.issue("client", "before-crash")
        with open(index, "rb") as f:
            before = f.read()

        def tiny_files():
            resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 10, resource.RLIM_INFINITY))

        for args in (["pki", "issue", "client", "crash", "--dir", self.dir],
                     ["pki", "revoke", serial, "--reason", "superseded", "--dir", self.dir]):
            with self.subTest(args=args):
                p = subprocess.run([MTLSCTL, *args], capture_output=True, preexec_fn=tiny_files)
                self.assertEqual(p.returncode, -signal.SIGXFSZ, p.stderr)
                with open(index, "rb") as f:
                    self.assertEqual(f.read(), before)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "issued", "crash", "cert.pem")))
        # The record still works: the next run issues and revokes normally.
        self.issue("client", "crash")
        p = ctl("pki", "revoke", serial, "--reason", "superseded", "--dir", self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_pki_badinput_key_mode_refused(self):
        key = os.path.join(self.dir, "issuing", "ca.key")
        os.chmod(key, 0o644)
        try:
            self.assert_refused(["pki", "issue", "client", "m", "--dir", self.dir], "chmod 600")
        finally:
            os.chmod(key, 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.issue("client", "m")


if __name__ == "__main__":
    unittest.main(verbosity=2)
