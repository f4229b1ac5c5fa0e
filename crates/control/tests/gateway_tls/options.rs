//! Gateway TLS options of the scenario in `scenario_gateway_tls.rs`: OPTIONAL_MUTUAL (with and
//! without `subjectAltNames`) and the TLS protocol version range.

use super::{Pki, Plane, at, get_ready, ttls};

/// OPTIONAL_MUTUAL: no client certificate or one from the client CA is accepted, one from
/// another CA refused. With `subjectAltNames`, a client CA certificate with another SAN is
/// refused too, and so is a client without a certificate (SAN matchers make one mandatory, as
/// Envoy does).
pub(super) async fn optional_mutual(p: &Plane, pki: &Pki) -> Result<(), String> {
    let plane = p.main.plane;
    let client = pki.client_ca.issue(&["client.example.com"], true)?;
    let stranger = pki.other_ca.issue(&["client.example.com"], true)?;
    let other_san = pki.client_ca.issue(&["other.example.com"], true)?;
    // Wait for the listener with a request that should pass, then check every case once.
    get_ready(&p.main, "optional.example.com", "/", &pki.ca.cert_pem, None).await?;
    let mut errors = Vec::new();
    for (host, what, cert, ok) in [
        ("optional.example.com", "a client cert", Some(&client), true),
        ("optional.example.com", "no client cert", None, true),
        (
            "optional.example.com",
            "a foreign client cert",
            Some(&stranger),
            false,
        ),
        (
            "sans.example.com",
            "a client cert with the SAN",
            Some(&client),
            true,
        ),
        (
            "sans.example.com",
            "a client cert with another SAN",
            Some(&other_san),
            false,
        ),
        (
            "sans.example.com",
            "a foreign client cert",
            Some(&stranger),
            false,
        ),
        ("sans.example.com", "no client cert", None, false),
    ] {
        let cfg = ttls::client_config(&pki.ca.cert_pem, cert)?;
        let got = ttls::https_get(at(&p.main), host, "/", cfg).await;
        match (ok, got) {
            (true, Ok(r)) if r.status == 200 && r.json["workload"] == "ratings" => {}
            (false, Err(_)) => {}
            (_, got) => errors.push(format!("{host} with {what}: {got:?}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("[{plane}] OPTIONAL_MUTUAL {}", errors.join("; ")))
    }
}

/// `minProtocolVersion: TLSV1_3` refuses a TLS 1.2-only client and serves TLS 1.3;
/// `maxProtocolVersion: TLSV1_2` serves TLS 1.2 to a client offering 1.3.
pub(super) async fn protocol_versions(p: &Plane, pki: &Pki) -> Result<(), String> {
    let plane = p.main.plane;
    for (host, want) in [
        ("tls13.example.com", "TLSv1_3"),
        ("tls12.example.com", "TLSv1_2"),
    ] {
        let r = get_ready(&p.main, host, "/", &pki.ca.cert_pem, None).await?;
        if r.status != 200 || r.version != want {
            return Err(format!(
                "[{plane}] {host}: {} over {}, want 200 over {want}",
                r.status, r.version
            ));
        }
    }
    let cfg = ttls::client_config_tls12(&pki.ca.cert_pem, None)?;
    if let Ok(r) = ttls::https_get(at(&p.main), "tls13.example.com", "/", cfg).await {
        return Err(format!(
            "[{plane}] minProtocolVersion TLSV1_3 served a TLS 1.2 client: {} over {}",
            r.status, r.version
        ));
    }
    Ok(())
}
