# Source this to build and run tinyforge with the project's PyTorch (libtorch for `train`/`eval`):
#   source scripts/env.sh
# It puts the project venv first on PATH so tch's build script finds PyTorch 2.11.0 there, and
# points every stage at the shared data cache.
_tf_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_tf_root/.venv/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export TINYFORGE_DATA="${TINYFORGE_DATA:-$HOME/.cache/tinyforge}"
unset _tf_root
