#!/usr/bin/env python3
"""Small FTPS client CLI (Python stdlib ftplib only), used by the integration tests as a client
that shares no code with the server.

Usage:
    ftps_client.py [options] STEP [STEP ...]

Connection options:
    --mode explicit|implicit   explicit: AUTH TLS on a plain control connection, then PBSZ 0 /
                               PROT P after login. implicit: TLS from the first byte (no AUTH);
                               data connections are protected without PBSZ/PROT (MS-FTPS), unless
                               --implicit-prot is given.
    --host H --port N --user U --password P
    --insecure                 do not verify the server certificate (self-signed test certs)
    --cafile PATH              verify the server certificate against PATH (and its name against --host)
    --cert FILE --key FILE     present this client certificate (PEM) in every TLS handshake; a
                               user logged in by it (232 to USER) is sent no password
    --reuse-session            data connections resume the control connection's TLS session
                               (what vsftpd require_ssl_reuse / proftpd / FileZilla Server demand)
    --tls-min 1.2|1.3, --tls-max 1.2|1.3   bound the TLS version (both channels)
    --active                   use PORT/EPRT instead of PASV/EPSV
    --implicit-prot            implicit mode only: still send PBSZ 0 / PROT P after login
    --timeout SECONDS          socket timeout (default 30)
    --source-address IP        bind control and data connections to this local address (so a
                               load balancer with source-IP stickiness sees distinct clients)
    -v, --verbose              log commands and replies to stderr

Steps, run in order on one session; the first failing step ends the run:
    put LOCAL REMOTE      STOR (binary). LOCAL "-" reads stdin.
    tryput LOCAL REMOTE   STOR that may be refused: prints "tryput REMOTE: <final reply or error>"
                          and never fails (a data connection the server closes early is an
                          error; the reply that follows is then read and printed)
    append LOCAL REMOTE   APPE (binary). LOCAL "-" reads stdin.
    tryappend LOCAL REMOTE  APPE as tryput does STOR
    get REMOTE LOCAL      RETR (binary). LOCAL "-" writes to stdout. A failed get removes LOCAL.
    reput LOCAL REMOTE    resume an upload: SIZE REMOTE, then REST n + STOR of LOCAL from byte n
    reget REMOTE LOCAL    resume a download: REST (size of LOCAL) + RETR, appended to LOCAL
    ls [PATH]             LIST, prints each line
    nlst [PATH]           NLST, prints each name
    mlsd [PATH]           MLSD, prints "name<TAB>fact=value;fact=value;..." (facts sorted)
    mkdir P | rmdir P | rm P | mv A B | cd P
    pwd                   prints the current directory
    size P                TYPE I then SIZE, prints the size
    raw "CMD ARGS"        sends one command, prints the full reply; never fails on the reply code
    tls                   prints "control=<version> cipher=<name> data_reused=<True|False|n/a>"
                          (data_reused: whether the last data connection resumed a TLS session)
    sync READY GO         creates the file READY, then waits (up to --timeout) until the file GO
                          exists: a script acts between two steps (bench/run.sh resets the
                          server's peak RSS after the login, before the transfer)

An optional PATH (ls/nlst/mlsd) is taken only if the next word is not a step name; write "./put"
to list a path called "put".

Exit status: 0 if every step succeeded; 1 if a step (or connecting, logging in, QUIT) failed, with
the FTP reply or error on stderr as "ftps_client: step N (NAME): ERROR"; 2 for a usage error.

Examples:
    ftps_client.py --mode explicit --host 127.0.0.1 --port 2121 --user u --password p --insecure \\
        put /tmp/a.bin dir/a.bin  size dir/a.bin  get dir/a.bin /tmp/b.bin  mlsd dir  rm dir/a.bin
    ftps_client.py --mode implicit --port 9990 ... --reuse-session --tls-max 1.2 ls  tls
"""

import argparse
import contextlib
import ftplib
import os
import socket
import ssl
import sys
import time

# step name -> (required args, optional args)
STEPS = {
    "put": (2, 0),
    "append": (2, 0),
    "get": (2, 0),
    "reput": (2, 0),
    "reget": (2, 0),
    "ls": (0, 1),
    "nlst": (0, 1),
    "mlsd": (0, 1),
    "mkdir": (1, 0),
    "rmdir": (1, 0),
    "rm": (1, 0),
    "mv": (2, 0),
    "cd": (1, 0),
    "pwd": (0, 0),
    "size": (1, 0),
    "raw": (1, 0),
    "tls": (0, 0),
    "sync": (2, 0),
    "tryput": (2, 0),
    "tryappend": (2, 0),
}

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class UsageError(Exception):
    pass


class ExplicitFTPS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections can resume the control connection's TLS session."""

    reuse_session = False
    last_data_reused = None  # None until a data connection has been made

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            kwargs = {"server_hostname": self.host}
            if self.reuse_session:
                kwargs["session"] = self.sock.session
            try:
                conn = self.context.wrap_socket(conn, **kwargs)
            except BaseException:
                conn.close()
                raise
            self.last_data_reused = conn.session_reused
        return conn, size


class ImplicitFTPS(ExplicitFTPS):
    """Implicit FTPS: the control connection is TLS from the first byte, before the greeting."""

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        if host:
            self.host = host
        if port:
            self.port = port
        if timeout != -999:
            self.timeout = timeout
        if source_address is not None:
            self.source_address = source_address
        sock = socket.create_connection(
            (self.host, self.port), self.timeout, source_address=self.source_address
        )
        try:
            self.sock = self.context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    # FTP_TLS.login() skips AUTH TLS when self.sock is already an SSLSocket: nothing to override.


def parse_steps(words):
    """Split the positional words into [(name, [args...]), ...]."""
    steps = []
    i = 0
    while i < len(words):
        name = words[i]
        if name not in STEPS:
            raise UsageError("unknown step %r (steps: %s)" % (name, ", ".join(STEPS)))
        required, optional = STEPS[name]
        args = words[i + 1 : i + 1 + required]
        if len(args) < required:
            raise UsageError("step %r needs %d argument(s)" % (name, required))
        i += 1 + required
        for _ in range(optional):
            if i < len(words) and words[i] not in STEPS:
                args.append(words[i])
                i += 1
        steps.append((name, args))
    if not steps:
        raise UsageError("no steps given")
    return steps


def make_context(opts):
    ctx = ssl.create_default_context(cafile=opts.cafile)
    if opts.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts.cert:
        ctx.load_cert_chain(opts.cert, opts.key)
    if opts.tls_min:
        ctx.minimum_version = TLS_VERSIONS[opts.tls_min]
    if opts.tls_max:
        ctx.maximum_version = TLS_VERSIONS[opts.tls_max]
    return ctx


def open_local_input(path):
    if path == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    return open(path, "rb")


def raw_command(ftp, line):
    """Send one command and return its full reply text, whatever its code."""
    ftp.putcmd(line)
    return ftp.getmultiline()


def try_store(ftp, verb, local, remote):
    """STOR or APPE that may be refused: the final reply (or error) as text, never raising."""
    try:
        with open_local_input(local) as f:
            return ftp.storbinary("%s %s" % (verb, remote), f)
    except ftplib.Error as e:
        return str(e)
    except (OSError, EOFError) as e:
        # The server ended the data connection before the client was done sending: its final
        # reply is still to be read from the control connection.
        try:
            return "%s; then %s" % (type(e).__name__, ftp.getresp())
        except ftplib.Error as e2:
            return "%s; then %s" % (type(e).__name__, e2)


def run_step(ftp, name, args, out):
    if name == "put":
        with open_local_input(args[0]) as f:
            ftp.storbinary("STOR " + args[1], f)
    elif name in ("tryput", "tryappend"):
        verb = "STOR" if name == "tryput" else "APPE"
        print("%s %s: %s" % (name, args[1], try_store(ftp, verb, args[0], args[1])), file=out)
    elif name == "append":
        with open_local_input(args[0]) as f:
            ftp.storbinary("APPE " + args[1], f)
    elif name == "get":
        if args[1] == "-":
            ftp.retrbinary("RETR " + args[0], out.buffer.write)
            out.buffer.flush()
        else:
            try:
                with open(args[1], "wb") as f:
                    ftp.retrbinary("RETR " + args[0], f.write)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(args[1])  # leave no partial or empty file behind
                raise
    elif name == "reput":
        ftp.voidcmd("TYPE I")
        held = ftp.size(args[1]) or 0
        with open(args[0], "rb") as f:
            f.seek(held)
            ftp.storbinary("STOR " + args[1], f, rest=held)
    elif name == "reget":
        held = os.path.getsize(args[1]) if os.path.exists(args[1]) else 0
        with open(args[1], "ab") as f:
            ftp.retrbinary("RETR " + args[0], f.write, rest=held)
    elif name == "ls":
        ftp.retrlines("LIST" + ("" if not args else " " + args[0]), lambda line: print(line, file=out))
    elif name == "nlst":
        ftp.retrlines("NLST" + ("" if not args else " " + args[0]), lambda line: print(line, file=out))
    elif name == "mlsd":
        for entry, facts in ftp.mlsd(args[0] if args else ""):
            text = ";".join("%s=%s" % (k, v) for k, v in sorted(facts.items()))
            print("%s\t%s" % (entry, text), file=out)
    elif name == "mkdir":
        ftp.mkd(args[0])
    elif name == "rmdir":
        ftp.rmd(args[0])
    elif name == "rm":
        ftp.delete(args[0])
    elif name == "mv":
        ftp.rename(args[0], args[1])
    elif name == "cd":
        ftp.cwd(args[0])
    elif name == "pwd":
        print(ftp.pwd(), file=out)
    elif name == "size":
        ftp.voidcmd("TYPE I")
        size = ftp.size(args[0])
        if size is None:
            raise ftplib.error_reply("SIZE reply without a number")
        print(size, file=out)
    elif name == "raw":
        print(raw_command(ftp, args[0]), file=out)
    elif name == "tls":
        sock = ftp.sock
        if isinstance(sock, ssl.SSLSocket):
            control, cipher = sock.version(), sock.cipher()[0]
        else:
            control, cipher = "none", "none"
        reused = "n/a" if ftp.last_data_reused is None else str(ftp.last_data_reused)
        print("control=%s cipher=%s data_reused=%s" % (control, cipher, reused), file=out)
    elif name == "sync":
        open(args[0], "w").close()
        deadline = time.monotonic() + ftp.timeout
        while not os.path.exists(args[1]):
            if time.monotonic() > deadline:
                raise TimeoutError("sync: %s not created within %s s" % (args[1], ftp.timeout))
            time.sleep(0.05)
    else:  # parse_steps only lets known names through
        raise UsageError("unknown step %r" % name)
    out.flush()


def build_parser():
    p = argparse.ArgumentParser(
        prog="ftps_client.py",
        description="FTPS client (stdlib ftplib) running a list of steps on one session.",
        epilog="Steps: " + ", ".join(STEPS) + ". See the module docstring for details.",
    )
    p.add_argument("--mode", choices=("explicit", "implicit"), required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    verify = p.add_mutually_exclusive_group(required=True)
    verify.add_argument("--insecure", action="store_true", help="no certificate verification")
    verify.add_argument("--cafile", help="verify the server certificate against this CA file")
    p.add_argument("--cert", help="client certificate (PEM) to present")
    p.add_argument("--key", help="private key (PEM) of --cert")
    p.add_argument("--reuse-session", action="store_true")
    p.add_argument("--tls-min", choices=tuple(TLS_VERSIONS))
    p.add_argument("--tls-max", choices=tuple(TLS_VERSIONS))
    p.add_argument("--active", action="store_true", help="active mode (PORT/EPRT)")
    p.add_argument("--implicit-prot", action="store_true", help="implicit mode: still send PBSZ/PROT")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--source-address", help="local address for control and data connections")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("steps", nargs=argparse.REMAINDER, metavar="STEP")
    return p


def main(argv=None):
    parser = build_parser()
    opts = parser.parse_args(argv)
    try:
        steps = parse_steps(opts.steps)
    except UsageError as e:
        parser.error(str(e))
    if bool(opts.cert) != bool(opts.key):
        parser.error("--cert and --key go together")

    out = sys.stdout
    # ftplib's debug output goes to stdout through print(); send it to stderr instead.
    debug_to_stderr = contextlib.redirect_stdout(sys.stderr) if opts.verbose else contextlib.nullcontext()

    cls = ImplicitFTPS if opts.mode == "implicit" else ExplicitFTPS
    # ftplib binds data connections to source_address too (ntransfercmd).
    source = (opts.source_address, 0) if opts.source_address else None
    ftp = cls(context=make_context(opts), timeout=opts.timeout, source_address=source)
    ftp.reuse_session = opts.reuse_session
    if opts.verbose:
        ftp.set_debuglevel(1)
    ftp.set_pasv(not opts.active)

    current = "connect"
    try:
        with debug_to_stderr:
            ftp.connect(opts.host, opts.port)
            if opts.mode == "explicit":
                current = "auth"
                ftp.auth()
                current = "login"
                ftp.login(opts.user, opts.password)
                current = "prot"
                ftp.prot_p()
            else:
                current = "login"
                ftp.login(opts.user, opts.password)
                if opts.implicit_prot:
                    current = "prot"
                    ftp.prot_p()
                else:
                    # MS-FTPS implicit mode: data connections are TLS without PBSZ/PROT.
                    ftp._prot_p = True
            current = "type"
            ftp.voidcmd("TYPE I")
        for n, (name, args) in enumerate(steps, 1):
            current = "step %d (%s)" % (n, name)
            # `out` is the real stdout even inside the redirect: only ftplib's debug lines move.
            with debug_to_stderr:
                run_step(ftp, name, args, out)
        current = "quit"
        with debug_to_stderr:
            ftp.quit()
    except (ftplib.Error, OSError, EOFError, UsageError) as e:
        msg = str(e).strip() or type(e).__name__
        print("ftps_client: %s: %s: %s" % (current, type(e).__name__, msg), file=sys.stderr)
        try:
            ftp.close()
        except OSError:
            pass
        return 1
    finally:
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
