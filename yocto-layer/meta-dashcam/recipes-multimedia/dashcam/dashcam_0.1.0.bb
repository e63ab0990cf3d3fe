SUMMARY = "dashcam: crash-safe rolling recorder for the Raspberry Pi Zero"
DESCRIPTION = "Records a camera's H.264 or MJPEG stream into rolling segment files that \
survive power cuts, from boot, as a systemd service (Type=notify, watchdog), with an \
optional GPIO button, status LED and ignition sense."
HOMEPAGE = "https://example.invalid/dashcam"
SECTION = "multimedia"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302 \
                    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# The layer lives in the dashcam repository: build that checkout (three levels up from
# this recipe's directory: recipes-multimedia/dashcam -> meta-dashcam -> yocto-layer).
inherit externalsrc
EXTERNALSRC = "${@os.path.abspath(os.path.join(d.getVar('FILE_DIRNAME'), '..', '..', '..', '..'))}"
EXTERNALSRC_BUILD = "${WORKDIR}/build"

# Every crate of Cargo.lock, fetched by the cargo class (regenerate the list with
# scripts/pi/yocto-crates.py after a Cargo.lock change).
require dashcam-crates.inc

inherit cargo systemd useradd

# A Pi Zero machine (meta-raspberrypi MACHINE = "raspberrypi0-wifi") gives the ARM1176
# tune (armv6 hard-float); the camera command comes from rpicam-apps.
RRECOMMENDS:${PN} += "rpicam-apps"

SYSTEMD_SERVICE:${PN} = "dashcam.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# The dashcam system user, in the video (camera) and gpio groups.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system gpio"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir /var/lib/dashcam \
                       --shell /sbin/nologin --user-group --groups video,gpio dashcam"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/dashcam.service ${D}${systemd_system_unitdir}/dashcam.service
    install -d ${D}${nonarch_libdir}/dashcam
    install -m 0755 ${S}/packaging/dashcam-start ${D}${nonarch_libdir}/dashcam/dashcam-start
    install -d ${D}${sysconfdir}/dashcam ${D}${sysconfdir}/default
    install -m 0644 ${S}/packaging/dashcam.toml ${D}${sysconfdir}/dashcam/dashcam.toml
    install -m 0644 ${S}/packaging/default ${D}${sysconfdir}/default/dashcam
    install -d ${D}${datadir}/polkit-1/rules.d
    install -m 0644 ${S}/packaging/polkit/50-dashcam.rules ${D}${datadir}/polkit-1/rules.d/
    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${S}/packaging/udev/60-dashcam-gpio.rules ${D}${nonarch_base_libdir}/udev/rules.d/
    # The footage drive's mount point (dir in dashcam.toml, RequiresMountsFor= in the unit).
    install -d -o dashcam -g dashcam -m 0750 ${D}/media/footage
}

FILES:${PN} += "${nonarch_libdir}/dashcam ${datadir}/polkit-1 \
                ${nonarch_base_libdir}/udev/rules.d /media/footage"
CONFFILES:${PN} = "${sysconfdir}/dashcam/dashcam.toml ${sysconfdir}/default/dashcam"
