//! The throwaway PKI of the test services (made with openssl): a CA, a
//! server certificate for 127.0.0.1, two client certificates, and a second
//! CA that signed none of them (to prove a wrong CA is refused).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::process::{random_hex, run};

/// A throwaway CA (`ca.pem`), a server certificate for 127.0.0.1 only
/// (`server.pem`: its subject alternative name is the IP address, so the
/// name `localhost` does not match it), two client certificates (`client`,
/// `other`) and a CA that signed nothing (`other-ca.pem`), EC P-256, valid
/// 2 days, as PEM files in `dir`.
pub(crate) fn make_pki(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    let openssl = || {
        let mut c = Command::new("openssl");
        c.current_dir(dir);
        c
    };
    let new_key = |name: &str| {
        run(openssl().args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &format!("{name}.key"),
        ]))
    };
    for (ca, cn) in [("ca", "espace-ps test CA"), ("other-ca", "another CA")] {
        new_key(ca)?;
        run(openssl().args([
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{ca}.key"),
            "-subj",
            &format!("/C=FR/O=Espace PS Test/CN={cn}"),
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &format!("{ca}.pem"),
        ]))?;
    }
    let leaf = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n";
    for (name, subject, ext) in [
        (
            "server",
            "/C=FR/O=Espace PS Test/CN=127.0.0.1",
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
        ),
        (
            "client",
            "/C=FR/O=Espace PS Test/CN=espace-ps-client",
            "extendedKeyUsage=clientAuth\n",
        ),
        (
            "other",
            "/C=FR/O=Espace PS Test/CN=other-client",
            "extendedKeyUsage=clientAuth\n",
        ),
    ] {
        new_key(name)?;
        run(openssl().args([
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            subject,
            "-out",
            &format!("{name}.csr"),
        ]))?;
        std::fs::write(dir.join(format!("{name}.ext")), format!("{leaf}{ext}"))
            .map_err(|e| e.to_string())?;
        run(openssl().args([
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &format!("0x{}", random_hex(8)?),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]))?;
    }
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "key") {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
