#!/usr/bin/env python3
"""aioftp (PyPI `aioftp`) as an FTPS client for the integration tests: upload, listing, download.

Usage:
    aioftp_client.py --mode explicit|implicit --host H --port N --user U --password P \\
        [--timeout S] put LOCAL REMOTE | get REMOTE LOCAL | ls PATH ...
        | reput LOCAL REMOTE | reget REMOTE LOCAL

reput: SIZE of REMOTE, then aioftp upload_stream(offset=n) (REST n + STOR) of LOCAL from byte n;
reget: aioftp download_stream(offset=size of LOCAL) (REST + RETR), appended to LOCAL.

explicit: plain control connection, AUTH TLS (aioftp `upgrade_to_tls`, which sends PBSZ 0 and
PROT P) before login. implicit: TLS from the first byte (aioftp `ssl=`); aioftp then sends no
PBSZ/PROT, the server assumes PROT P. aioftp completes each data connection's TLS handshake
before it sends STOR/RETR/MLSD (and resumes the control connection's TLS session).
Certificates are not verified (self-signed test certificates).

Steps run in order on one session. `ls` prints one `name<TAB>type<TAB>size` line per entry.
Exit status 0 if every step succeeded, 1 otherwise (the error on stderr), 2 on a usage error.
"""

import argparse
import asyncio
import os
import ssl
import sys

import aioftp

STEPS = {"put": 2, "get": 2, "ls": 1, "reput": 2, "reget": 2}


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def run(args, steps):
    implicit = args.mode == "implicit"
    client = aioftp.Client(
        ssl=context() if implicit else None,
        socket_timeout=args.timeout,
        connection_timeout=args.timeout,
        path_timeout=args.timeout,
    )
    await client.connect(args.host, args.port)
    try:
        if not implicit:
            await client.upgrade_to_tls(context())
        await client.login(args.user, args.password)
        for name, params in steps:
            if name == "put":
                await client.upload(params[0], params[1], write_into=True)
            elif name == "get":
                await client.download(params[0], params[1], write_into=True)
            elif name == "reput":
                held = await client.stat(params[1])
                held = int(held.get("size", 0))
                with open(params[0], "rb") as f:
                    f.seek(held)
                    async with client.upload_stream(params[1], offset=held) as stream:
                        while block := f.read(65536):
                            await stream.write(block)
            elif name == "reget":
                held = os.path.getsize(params[1]) if os.path.exists(params[1]) else 0
                with open(params[1], "ab") as f:
                    async with client.download_stream(params[0], offset=held) as stream:
                        async for block in stream.iter_by_block():
                            f.write(block)
            elif name == "ls":
                for path, info in await client.list(params[0]):
                    print(f"{path.name}\t{info.get('type')}\t{info.get('size', '')}")
        await client.quit()
    finally:
        client.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["explicit", "implicit"], required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--timeout", type=float, default=20)
    parser.add_argument("steps", nargs="*")
    args = parser.parse_args()
    words, steps = list(args.steps), []
    while words:
        name = words.pop(0)
        if name not in STEPS or len(words) < STEPS[name]:
            print(f"aioftp_client: bad step {name!r}", file=sys.stderr)
            return 2
        steps.append((name, words[: STEPS[name]]))
        del words[: STEPS[name]]
    try:
        asyncio.run(asyncio.wait_for(run(args, steps), args.timeout * 3))
    except Exception as e:  # report any client failure as the step's error
        print(f"aioftp_client: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
