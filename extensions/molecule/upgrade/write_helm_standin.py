"""Write the tests' stand-in helm for a lab (no helm binary can be had on the test machines).

Usage: python write_helm_standin.py LAB_DIR HELM_DIR   (writes HELM_DIR/helm; MOLECULE_PROJECT_DIRECTORY is the repo)
"""
import os
import sys


def main(lab_dir, helm_dir):
    sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "tests", "integration"))
    from alexlab.testing import LabHandle
    from helm_standin import make_helm_standin
    print(make_helm_standin(helm_dir, LabHandle(lab_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
