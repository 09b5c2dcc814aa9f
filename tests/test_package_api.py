"""`from gan_probe import ...` offers the main API, imported lazily so `import gan_probe` stays cheap."""
import subprocess
import sys

import gan_probe


def test_every_public_name_imports():
    for name in gan_probe.__all__:
        namespace = {}
        exec(f"from gan_probe import {name}", namespace)
        assert namespace[name] is getattr(gan_probe, name), name
    for name in ("extract_features", "load_store", "fit_svm", "probe_store", "ProbeConfig", "KMeansDictionary",
                 "frechet_distance", "inception_score", "load_models", "TrainConfig", "build_report",
                 "save_converted", "load_split", "GanProbeError"):
        assert name in gan_probe.__all__, name


def test_importing_the_package_imports_neither_torch_nor_numpy():
    code = "import sys, gan_probe; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
