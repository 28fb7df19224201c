# Sourced by the scripts/gpu/*.sh programs on the GPU machine: sets
# ROOT, D (.devcarry/, packed by scripts/gpu/pack.sh), OUT (what the device
# tool brings back) and W (the wasmpod binary), unpacks the xz-compressed
# binaries (with Python's lzma: the machine may lack xz), and keeps NVLink
# multicast off as the machine's rules require.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
D="$ROOT/.devcarry"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
for f in "$D"/bin/*.xz; do
  [ -e "$f" ] && python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[1][:-3], "wb"))' "$f" && rm "$f"
done
chmod +x "$D"/bin/* 2>/dev/null
W="$D/bin/wasmpod"
