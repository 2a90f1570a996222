//! Authentication and transport security, as Dapr's Kafka component spells it, mapped to
//! librdkafka's `security.protocol`, `sasl.*` and `ssl.*` properties.
//!
//! | authType      | security.protocol             | what else                          |
//! |---------------|-------------------------------|------------------------------------|
//! | `none`        | PLAINTEXT (SSL with `caCert`) |                                    |
//! | `password`    | SASL_SSL (SASL_PLAINTEXT with `disableTls`) | PLAIN / SCRAM-SHA-256/512 |
//! | `mtls`        | SSL                           | client cert + key (PEM values)     |
//! | `certificate` | SSL                           | server verification only           |
//! | `oidc`        | SASL_SSL (SASL_PLAINTEXT with `disableTls`) | OAUTHBEARER, method=oidc |
//!
//! PEM values are passed inline (`ssl.ca.pem`, `ssl.certificate.pem`, `ssl.key.pem`) because
//! daprd hands us resolved secrets, not files.

use std::fmt;

use rdkafka::ClientConfig;

use super::Metadata;
use crate::error::Result;

/// A value that must never be printed: Debug and Display show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret text, for handing to librdkafka only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// TLS settings for the broker connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM CA certificate(s); system roots when absent.
    pub ca_cert: Option<String>,
    /// PEM client certificate and key, for mutual TLS.
    pub client: Option<(String, Secret)>,
    /// Skip broker certificate verification.
    pub skip_verify: bool,
}

/// SASL mechanisms for `authType: password`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// SASL PLAIN (Dapr spells it `PLAINTEXT`).
    Plain,
    /// SCRAM-SHA-256.
    ScramSha256,
    /// SCRAM-SHA-512.
    ScramSha512,
}

/// How the bridge authenticates to Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No authentication; TLS only when a CA certificate is given.
    None {
        /// TLS, if `caCert` was given.
        tls: Option<Tls>,
    },
    /// SASL PLAIN or SCRAM with a user name and password.
    Password {
        /// SASL user.
        username: String,
        /// SASL password.
        password: Secret,
        /// SASL mechanism.
        mechanism: SaslMechanism,
        /// TLS unless `disableTls`.
        tls: Option<Tls>,
    },
    /// TLS with a client certificate (mTLS) or without one (`certificate`).
    Tls(Tls),
    /// SASL OAUTHBEARER with tokens fetched from an OIDC token endpoint.
    Oidc {
        /// Token endpoint URL.
        token_endpoint: String,
        /// OAuth2 client id.
        client_id: String,
        /// OAuth2 client secret.
        client_secret: Secret,
        /// Requested scopes.
        scopes: Option<String>,
        /// TLS unless `disableTls`.
        tls: Option<Tls>,
    },
}

impl Auth {
    /// Reads `authType` and the keys it needs.
    pub(crate) fn parse(meta: &Metadata<'_>) -> Result<Self> {
        let auth_type = meta.text("authType")?.unwrap_or("none").to_ascii_lowercase();
        let disable_tls = meta.boolean("disableTls")?.unwrap_or(false);
        let tls = || -> Result<Tls> {
            Ok(Tls {
                ca_cert: meta.text("caCert")?.map(str::to_owned),
                client: None,
                skip_verify: meta.boolean("skipVerify")?.unwrap_or(false),
            })
        };
        let tls_unless_disabled = || -> Result<Option<Tls>> { if disable_tls { Ok(None) } else { tls().map(Some) } };
        Ok(match auth_type.as_str() {
            "none" => {
                Auth::None { tls: if meta.text("caCert")?.is_some() && !disable_tls { Some(tls()?) } else { None } }
            }
            "password" => Auth::Password {
                username: meta.required("saslUsername", "authType `password`")?.to_owned(),
                password: Secret(meta.required("saslPassword", "authType `password`")?.to_owned()),
                mechanism: match meta.text("saslMechanism")?.map(str::to_ascii_uppercase).as_deref() {
                    None | Some("PLAINTEXT") | Some("PLAIN") => SaslMechanism::Plain,
                    Some("SHA-256") | Some("SCRAM-SHA-256") => SaslMechanism::ScramSha256,
                    Some("SHA-512") | Some("SCRAM-SHA-512") => SaslMechanism::ScramSha512,
                    Some(other) => {
                        return Err(meta.invalid(
                            "saslMechanism",
                            format!("`{other}` is not supported (accepted: PLAINTEXT, SHA-256, SHA-512)"),
                        ));
                    }
                },
                tls: tls_unless_disabled()?,
            },
            "mtls" => {
                let mut tls = tls()?;
                let cert = meta.required("clientCert", "authType `mtls`")?;
                let key = meta.required("clientKey", "authType `mtls`")?;
                for (name, value, marker) in [("clientCert", cert, "CERTIFICATE"), ("clientKey", key, "PRIVATE KEY")] {
                    if !value.contains("-----BEGIN") || !value.contains(marker) {
                        return Err(
                            meta.invalid(name, format!("is not a PEM {marker} (expected -----BEGIN ...{marker}-----)"))
                        );
                    }
                }
                tls.client = Some((cert.to_owned(), Secret(key.to_owned())));
                Auth::Tls(tls)
            }
            "certificate" => Auth::Tls(tls()?),
            "oidc" => Auth::Oidc {
                token_endpoint: meta.required("oidcTokenEndpoint", "authType `oidc`")?.to_owned(),
                client_id: meta.required("oidcClientID", "authType `oidc`")?.to_owned(),
                client_secret: Secret(meta.required("oidcClientSecret", "authType `oidc`")?.to_owned()),
                scopes: meta.text("oidcScopes")?.map(str::to_owned),
                tls: tls_unless_disabled()?,
            },
            other => {
                return Err(meta.invalid(
                    "authType",
                    format!("`{other}` is not supported (accepted: none, password, mtls, certificate, oidc)"),
                ));
            }
        })
    }

    /// Writes the librdkafka properties for this authentication.
    pub(crate) fn apply(&self, config: &mut ClientConfig) {
        let (protocol, tls) = match self {
            Auth::None { tls } => (if tls.is_some() { "ssl" } else { "plaintext" }, tls.as_ref()),
            Auth::Password { tls, .. } | Auth::Oidc { tls, .. } => {
                (if tls.is_some() { "sasl_ssl" } else { "sasl_plaintext" }, tls.as_ref())
            }
            Auth::Tls(tls) => ("ssl", Some(tls)),
        };
        config.set("security.protocol", protocol);
        if let Some(tls) = tls {
            if let Some(ca) = &tls.ca_cert {
                config.set("ssl.ca.pem", ca);
            }
            if let Some((cert, key)) = &tls.client {
                config.set("ssl.certificate.pem", cert);
                config.set("ssl.key.pem", key.expose());
            }
            if tls.skip_verify {
                config.set("enable.ssl.certificate.verification", "false");
                config.set("ssl.endpoint.identification.algorithm", "none");
            }
        }
        match self {
            Auth::Password { username, password, mechanism, .. } => {
                config.set(
                    "sasl.mechanism",
                    match mechanism {
                        SaslMechanism::Plain => "PLAIN",
                        SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
                        SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
                    },
                );
                config.set("sasl.username", username);
                config.set("sasl.password", password.expose());
            }
            Auth::Oidc { token_endpoint, client_id, client_secret, scopes, .. } => {
                config.set("sasl.mechanism", "OAUTHBEARER");
                config.set("sasl.oauthbearer.method", "oidc");
                config.set("sasl.oauthbearer.token.endpoint.url", token_endpoint);
                config.set("sasl.oauthbearer.client.id", client_id);
                config.set("sasl.oauthbearer.client.secret", client_secret.expose());
                if let Some(scopes) = scopes {
                    config.set("sasl.oauthbearer.scope", scopes.replace(',', " "));
                }
            }
            Auth::None { .. } | Auth::Tls(_) => {}
        }
    }
}

impl Auth {
    /// Every secret value this configuration holds, to scrub from texts that are shown.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        let tls = match self {
            Auth::Password { password, tls, .. } => {
                out.push(password.expose().to_owned());
                tls.as_ref()
            }
            Auth::Oidc { client_secret, tls, .. } => {
                out.push(client_secret.expose().to_owned());
                tls.as_ref()
            }
            Auth::Tls(tls) => Some(tls),
            Auth::None { tls } => tls.as_ref(),
        };
        if let Some((_, key)) = tls.and_then(|t| t.client.as_ref()) {
            out.push(key.expose().to_owned());
        }
        out
    }
}

/// The librdkafka properties that the auth keys own (a `kafka.` passthrough may not set them).
pub(crate) const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("security.protocol", "authType"),
    ("sasl.mechanism", "saslMechanism"),
    ("sasl.mechanisms", "saslMechanism"),
    ("sasl.username", "saslUsername"),
    ("sasl.password", "saslPassword"),
    ("ssl.ca.pem", "caCert"),
    ("ssl.certificate.pem", "clientCert"),
    ("ssl.key.pem", "clientKey"),
    ("enable.ssl.certificate.verification", "skipVerify"),
    ("sasl.oauthbearer.token.endpoint.url", "oidcTokenEndpoint"),
    ("sasl.oauthbearer.client.id", "oidcClientID"),
    ("sasl.oauthbearer.client.secret", "oidcClientSecret"),
    ("sasl.oauthbearer.scope", "oidcScopes"),
];
