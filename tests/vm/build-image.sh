#!/bin/bash
# build-image.sh - the recipe of the VM test tier's guest image (kernel, initramfs, root filesystem).
#
# Everything comes from Debian packages (apt-get download, debootstrap) plus a wheelhouse the host
# prepared with pip (the swarmscope dependencies, which bookworm ships too old).  The output goes to
# $OUT_DIR, which the caller (tests/vm/vmlab.py) builds in a staging directory and renames into place
# only on success.  vmlab.py keys the image cache on the sha256 of THIS FILE (plus SUITE), so any
# change here - package list, init script, modules - rebuilds the image.
#
# Inputs (environment):  OUT_DIR  WHEELHOUSE  [SUITE=bookworm]  [DISK_SIZE=6G]
# Progress lines go to stderr ("[vm-build] ..."), command output to $OUT_DIR/build-*.log.
# Exit status 3 = a download failed (mirror unreachable): the caller turns that into a test skip.
set -euo pipefail
export LC_ALL=C

: "${OUT_DIR:?}" "${WHEELHOUSE:?}"
SUITE=${SUITE:-bookworm}
DISK_SIZE=${DISK_SIZE:-6G}
PACKAGES=docker.io,iptables,nftables,ipvsadm,busybox-static,kmod,iproute2,procps,util-linux,tini,python3,python3-pip,python3-venv
GUEST_VENV=/opt/swarmscope-venv
T0=$SECONDS
log() { echo "[vm-build +$((SECONDS-T0))s] $*" >&2; }
download_failed() { log "DOWNLOAD FAILED: $*"; exit 3; }

W=$OUT_DIR/work
KPKG=$W/kpkg
ROOTFS=$W/rootfs
mkdir -p "$W"

# ---------------------------------------------------------------- 1. kernel (Debian's stock, ip_vs as module)
log "kernel: apt-get download of linux-image for $SUITE"
KPKGNAME=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKGNAME" ] || download_failed "apt-cache does not know linux-image-amd64 (apt-get update?)"
mkdir -p "$KPKG"
( cd "$KPKG" && apt-get download "$KPKGNAME" ) > "$OUT_DIR/build-kernel.log" 2>&1 \
  || download_failed "apt-get download $KPKGNAME (see build-kernel.log)"
dpkg -x "$KPKG/${KPKGNAME}"_*.deb "$KPKG/root"
KV=${KPKGNAME#linux-image-}
grep -q '^CONFIG_IP_VS=[my]' "$KPKG/root/boot/config-$KV" || { log "kernel $KV has no IP_VS"; exit 1; }
cp "$KPKG/root/boot/vmlinuz-$KV" "$OUT_DIR/vmlinuz"
echo "$KV" > "$OUT_DIR/kernel-version"
log "kernel $KV ready"

# ---------------------------------------------------------------- 2. root filesystem
# Two stages so that a policy-rc.d is in place before docker.io/containerd are configured: nothing
# may start on the host while the chroot is being configured.
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
log "debootstrap $SUITE from $MIRROR (first stage: download + unpack)"
debootstrap --foreign --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
  > "$OUT_DIR/build-debootstrap-1.log" 2>&1 || download_failed "debootstrap first stage (see build-debootstrap-1.log)"
mkdir -p "$ROOTFS/usr/sbin"
printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"; chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
log "debootstrap second stage (configure, in chroot)"
chroot "$ROOTFS" /debootstrap/debootstrap --second-stage > "$OUT_DIR/build-debootstrap-2.log" 2>&1
chroot "$ROOTFS" dpkg-query -W docker.io containerd runc iptables ipvsadm busybox-static python3 python3-pip \
  > "$OUT_DIR/guest-packages.txt"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
log "root filesystem configured"

# kernel modules
mkdir -p "$ROOTFS/lib/modules"
cp -a "$KPKG/root/lib/modules/$KV" "$ROOTFS/lib/modules/"
chroot "$ROOTFS" depmod "$KV"

# ---------------------------------------------------------------- 3. python venv with swarmscope's dependencies
# (bookworm's python3-docker / python3-pyroute2 are older than pyproject.toml allows).  The boot-time
# install (guest, --no-index --find-links /wheels) resolves against the current wheelhouse again, so a
# dependency change works without an image rebuild; this pre-install only makes that step fast.
log "venv $GUEST_VENV with the wheelhouse's packages (in chroot)"
mkdir -p "$ROOTFS/tmp/wheels"
cp "$WHEELHOUSE"/*.whl "$ROOTFS/tmp/wheels/"
chroot "$ROOTFS" python3 -m venv "$GUEST_VENV" > "$OUT_DIR/build-venv.log" 2>&1
chroot "$ROOTFS" sh -c "$GUEST_VENV/bin/pip install --no-index --no-cache-dir --find-links /tmp/wheels /tmp/wheels/*.whl" \
  >> "$OUT_DIR/build-venv.log" 2>&1
chroot "$ROOTFS" "$GUEST_VENV/bin/pip" freeze > "$OUT_DIR/guest-venv-freeze.txt"
rm -rf "$ROOTFS/tmp/wheels"

# ---------------------------------------------------------------- 4. guest identity, init and runner
echo swarmscope-vm > "$ROOTFS/etc/hostname"
printf '127.0.0.1 localhost\n192.168.76.15 swarmscope-vm\n' > "$ROOTFS/etc/hosts"
: > "$ROOTFS/etc/resolv.conf"       # no network, no DNS: anything that tries a registry fails fast
mkdir -p "$ROOTFS/out" "$ROOTFS/scenario" "$ROOTFS/src" "$ROOTFS/wheels"

# PID 1 after the initramfs' switch_root.  The guest has NO network device: the swarm advertises on
# a dummy interface, and every byte of traffic stays inside the guest.
cat > "$ROOTFS/sbin/vm-init" <<'EOF'
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -o remount,rw /
hostname swarmscope-vm
echo "VM-MARK init_started uptime=$(cut -d' ' -f1 /proc/uptime)"
modprobe -a virtio_rng 9p 9pnet_virtio dummy overlay bridge br_netfilter veth vxlan \
  ip_vs ip_vs_rr xt_ipvs nf_conntrack nf_nat iptable_nat iptable_mangle iptable_filter \
  nft_compat nft_chain_nat xt_MASQUERADE xt_REDIRECT xt_addrtype xt_conntrack xt_mark xt_nat xt_tcpudp xt_comment 2>&1
ip link set lo up
ip link add eth0 type dummy
ip link set eth0 up
ip addr add 192.168.76.15/24 dev eth0
ip route add default via 192.168.76.2 dev eth0 onlink
o=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o $o vmout /out
mount -t 9p -o $o,ro vmscenario /scenario
mount -t 9p -o $o,ro vmsrc /src
mount -t 9p -o $o,ro vmwheels /wheels
exec /usr/bin/tini -s -- /sbin/vm-run
EOF
chmod +x "$ROOTFS/sbin/vm-init"

# Runs the scenario shared at /scenario (not baked in: editing it needs no rebuild), then always
# shuts the guest down cleanly: dockerd stopped, disks synced, /out unmounted, power off.
cat > "$ROOTFS/sbin/vm-run" <<'EOF'
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SCENARIO_TIMEOUT=1500
[ -f /out/params.env ] && . /out/params.env
echo "VM-MARK scenario_start uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ -f /scenario/scenario.sh ]; then
  timeout -k 10 "$SCENARIO_TIMEOUT" /bin/bash /scenario/scenario.sh
  rc=$?
else
  echo "no /scenario/scenario.sh"; rc=127
fi
echo "$rc" > /out/scenario.rc
echo "VM-MARK scenario_exit rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  p=$(cat /var/run/docker.pid); kill -TERM "$p"
  for i in $(seq 1 120); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
  echo "VM-MARK dockerd_stopped uptime=$(cut -d' ' -f1 /proc/uptime)"
fi
cp /var/log/dockerd.log /out/dockerd.log 2>/dev/null
sync
umount /out /scenario /src /wheels 2>/dev/null
mount -o remount,ro / 2>/dev/null
echo "VM-MARK poweroff uptime=$(cut -d' ' -f1 /proc/uptime)"
exec /bin/busybox poweroff -f
EOF
chmod +x "$ROOTFS/sbin/vm-run"

# ---------------------------------------------------------------- 5. initramfs (busybox + virtio/ext4 modules)
log "initramfs"
IR=$W/initramfs; mkdir -p "$IR"/{bin,dev,proc,sys,newroot,mods}
cp "$ROOTFS/bin/busybox" "$IR/bin/busybox"
mknod -m 600 "$IR/dev/console" c 5 1
for m in virtio_pci virtio_blk crc32c_generic ext4; do
  chroot "$ROOTFS" modprobe -S "$KV" --show-depends "$m"
done | awk '$1=="insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
  cp "$ROOTFS$ko" "$IR/mods/"; basename "$ko" >> "$IR/mods/order"
done
cat > "$IR/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /mods/order); do insmod /mods/$m 2>/dev/null; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "cannot mount /dev/vda"; poweroff -f; }
umount /proc /sys; mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/vm-init
EOF
chmod +x "$IR/init"
( cd "$IR" && find . | "$ROOTFS/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1 ) > "$OUT_DIR/initrd.gz"

# ---------------------------------------------------------------- 6. ext4 disk image (sparse; each boot uses a qcow2 overlay)
log "ext4 image ($DISK_SIZE sparse)"
mkfs.ext4 -q -F -L swarmscope-vm -d "$ROOTFS" "$OUT_DIR/disk.img" "$DISK_SIZE" > "$OUT_DIR/build-mkfs.log" 2>&1
rm -rf "$W"
log "image done: $(du -sh "$OUT_DIR" | cut -f1) in $OUT_DIR"
