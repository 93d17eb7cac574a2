#!/usr/bin/python3
"""Self-test of .ci/check-layers: a small tree in a temporary directory, made clean and then
broken one rule at a time; the checker must pass the clean tree and name file and include of
each break. Usage: test_check_layers.py REPO_ROOT"""
import os
import subprocess
import sys
import tempfile

CHECK = os.path.join(sys.argv[1], ".ci", "check-layers")
DOC = """# Internals

## Layers

| layer | modules | what it may use |
|---|---|---|
| `base/` | text | libc |
| `probe/` | probe, posture | base |
| `analysis/` | analyze, report, metrics | base, probe |
| `notify/` | alert, payload | base, analysis |
| top | `main.c` | everything |

## Modules
"""
CLEAN = {
    "docs/internals.md": DOC,
    "include/certmon/base/text.h": "#include <stddef.h>\n",
    "src/base/text.c": '#include "certmon/base/text.h"\n#include <unistd.h>\n',
    "include/certmon/probe/probe.h": '#include <uv.h>\n#include "certmon/base/text.h"\n',
    "src/probe/probe.c": '#include "certmon/probe/probe.h"\n',
    "include/certmon/probe/posture.h": '#include "certmon/probe/probe.h"\n',
    "src/probe/posture.c": '#include "certmon/probe/posture.h"\n',
    "include/certmon/analysis/analyze.h": '#include "certmon/base/text.h"\n',
    "src/analysis/analyze.c": ('#include "certmon/analysis/analyze.h"\n'
                               '/* time(NULL) in a comment is fine */\n'
                               'static const char *s = "open(x)";\n'
                               'int f(struct x *p) { return p->read(1) + cm_x_read(2); }\n'),
    "src/main.c": '#include "certmon/analysis/analyze.h"\n#include "certmon/probe/probe.h"\n',
}
# The other pure modules the checker knows, empty.
for _m in ("analysis/change", "analysis/report", "analysis/metrics", "analysis/page",
           "notify/alert", "notify/payload"):
    CLEAN[f"src/{_m}.c"] = ""
    CLEAN[f"include/certmon/{_m}.h"] = ""
BREAKS = [
    # (what, file, new text, expected words in the output)
    ("upward include", "src/base/text.c", '#include "certmon/probe/probe.h"\n',
     ["src/base/text.c:1", "certmon/probe/probe.h", "higher layer 'probe'"]),
    ("cycle", "src/probe/probe.c", '#include "certmon/probe/posture.h"\n',
     ["include cycle", "probe/posture -> probe/probe", "src/probe/probe.c:1"]),
    ("pure file, I/O header through a certmon header", "include/certmon/analysis/analyze.h",
     '#include "certmon/probe/probe.h"\n',
     ["include/certmon/probe/probe.h:1", "<uv.h>", "include/certmon/analysis/analyze.h"]),
    ("pure file calls time()", "src/analysis/analyze.c",
     '#include "certmon/analysis/analyze.h"\nlong f(void) { return time (0); }\n',
     ["src/analysis/analyze.c:2", "time()"]),
    ("pure file, GnuTLS header", "src/analysis/analyze.c", '#include <gnutls/gnutls.h>\n',
     ["src/analysis/analyze.c:1", "<gnutls/gnutls.h>"]),
    ("unknown folder", "src/extra/x.c", "int x;\n", ["src/extra/x.c", "not a layer"]),
    ("pure module missing", "src/notify/alert.c", None, ["src/notify/alert.c", "missing"]),
    ("missing header", "src/main.c", '#include "certmon/probe/nothere.h"\n',
     ["src/main.c:1", "no such header"]),
]


def tree(files):
    d = tempfile.mkdtemp(prefix="check-layers.")
    for rel, text in files.items():
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return d


def run(d):
    r = subprocess.run(["/usr/bin/python3", CHECK, d], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout + r.stderr


def main():
    failures = 0
    rc, out = run(tree(CLEAN))
    if rc != 0:
        print(f"FAIL clean tree: exit {rc}:\n{out}")
        failures += 1
    else:
        print("ok   clean tree")
    for what, rel, text, words in BREAKS:
        files = dict(CLEAN)
        if text is None:
            del files[rel]
        else:
            files[rel] = text
        rc, out = run(tree(files))
        missing = [w for w in words if w not in out]
        if rc != 1 or missing:
            print(f"FAIL {what}: exit {rc}, missing {missing} in:\n{out}")
            failures += 1
        else:
            print(f"ok   {what}")
    # The real tree passes.
    rc, out = run(sys.argv[1])
    if rc != 0:
        print(f"FAIL repository: {out}")
        failures += 1
    else:
        print(f"ok   repository: {out.strip()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
