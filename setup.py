"""The one build step pyproject.toml cannot declare: two files at the top of site-packages.

`tunedoc-python-m.pth` and the module `_tunedoc_pth` (a copy of tunedoc/pth.py) make `python -m tunedoc` run the
installed tunedoc in a folder that holds a `tunedoc/` package of its own (tunedoc/pth.py says how). A wheel takes
them from the build folder, as any module. An editable wheel (PEP 660, `pip install -e .`) takes only the packages'
import mapping from there, so in editable mode they are written straight into the wheel being assembled, as
setuptools does with data files and scripts. pip records both in RECORD, so uninstalling removes them.
"""

import importlib.util
import os

from setuptools import setup
from setuptools.command.build_py import build_py


def _files() -> dict[str, str]:
    source = os.path.join("tunedoc", "pth.py")
    spec = importlib.util.spec_from_file_location("_tunedoc_pth", source)
    pth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pth)
    with open(source, encoding="utf-8") as f:
        return {pth.PTH_NAME: pth.PTH_LINE, f"{pth.MODULE}.py": f.read()}


class build_py_with_pth(build_py):
    def run(self):
        super().run()
        folders = [self.build_lib]
        if self.editable_mode:  # setuptools' editable_wheel installs the wheel's top level into install_lib
            folders.append(self.get_finalized_command("install").install_lib)
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
            for name, text in _files().items():
                # .pth files are read in the locale's encoding before Python 3.13: keep both files ASCII
                with open(os.path.join(folder, name), "w", encoding="ascii") as f:
                    f.write(text)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), *(os.path.join(self.build_lib, n) for n in _files())]


setup(cmdclass={"build_py": build_py_with_pth})
