# The Debian package: `cmake --build build --target package` writes
# build/certmon_VERSION-1_ARCH.deb (docs/packaging.md). The files it holds are the install
# rules below, so `cmake --install build --prefix /usr` as root installs the same layout (the
# unit's ExecStart names /usr/bin/certmon). Maintainer scripts: contrib/debian/.

# The example configuration, with the state kept where the service may write
# (StateDirectory=certmon): the only difference from config/certmon.conf.
set(_conf_src ${PROJECT_SOURCE_DIR}/config/certmon.conf)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_conf_src})
file(READ ${_conf_src} _conf)
set(_state_from "    state_file = \"certmon.db\";")
set(_state_to "    state_file = \"/var/lib/certmon/certmon.db\";")
string(FIND "${_conf}" "${_state_from}" _at)
if(_at LESS 0)
    message(FATAL_ERROR "config/certmon.conf has no line '${_state_from}': the packaged "
                        "configuration (cmake/package.cmake) sets its state_file there")
endif()
string(REPLACE "${_state_from}" "${_state_to}" _conf "${_conf}")
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/pkg/certmon.conf "${_conf}")

install(FILES ${CMAKE_CURRENT_BINARY_DIR}/pkg/certmon.conf DESTINATION /etc/certmon)
install(FILES ${PROJECT_SOURCE_DIR}/contrib/systemd/certmon.service
        DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/certmon)
file(GLOB _docs ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${_docs} DESTINATION share/doc/certmon)
install(FILES ${PROJECT_SOURCE_DIR}/contrib/debian/copyright DESTINATION share/doc/certmon)
install(FILES ${PROJECT_SOURCE_DIR}/contrib/debian/lintian-overrides
        DESTINATION share/lintian/overrides RENAME certmon)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/contrib/prometheus ${PROJECT_SOURCE_DIR}/contrib/grafana
        DESTINATION share/doc/certmon/examples OPTIONAL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME certmon)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_VERSION ${PROJECT_VERSION})
set(CERTMON_DEB_VERSION ${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_PACKAGE_CONTACT
    "certmon maintainers <maintainers@users.noreply.r-seed-148414ee.example>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "TLS certificate monitoring daemon")
# CPack writes the summary as the synopsis line; this is the extended description only.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "certmon tells you, before your users do, when a certificate is about to
expire, no longer verifies, or does not match its name. `certmon check`
probes endpoints once from the shell (monitoring-plugin exit codes, JSON
output); `certmon run` is the daemon, run by certmon.service: it probes
every endpoint and certificate file of /etc/certmon/certmon.conf on a
schedule, serves Prometheus metrics on 127.0.0.1:9799 and sends alerts to
Slack, webhooks, email and Alertmanager.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Runtime dependencies: the shared libraries' packages (dpkg-shlibdeps on the binary), plus
# adduser for the postinst, the trust store every probe verifies against, and procps for the
# unit's ExecReload=/bin/kill (not in a minimal Debian 12).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, ca-certificates, procps")
set(CPACK_STRIP_FILES TRUE)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/contrib/debian/postinst
    ${PROJECT_SOURCE_DIR}/contrib/debian/prerm
    ${PROJECT_SOURCE_DIR}/contrib/debian/postrm
    ${PROJECT_SOURCE_DIR}/contrib/debian/conffiles)

# Debian wants /usr/share/doc/PACKAGE/changelog.Debian.gz, gzip -9n.
if(DEFINED ENV{SOURCE_DATE_EPOCH})
    set(_epoch $ENV{SOURCE_DATE_EPOCH})
else()
    execute_process(COMMAND git -C ${PROJECT_SOURCE_DIR} log -1 --format=%ct
                    OUTPUT_VARIABLE _epoch OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
if(_epoch)
    set(ENV{SOURCE_DATE_EPOCH} ${_epoch})
endif()
string(TIMESTAMP CERTMON_CHANGELOG_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(${PROJECT_SOURCE_DIR}/contrib/debian/changelog.in
               ${CMAKE_CURRENT_BINARY_DIR}/pkg/changelog.Debian @ONLY)
execute_process(COMMAND gzip -9nf ${CMAKE_CURRENT_BINARY_DIR}/pkg/changelog.Debian)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/pkg/changelog.Debian.gz DESTINATION share/doc/certmon)

include(CPack)
