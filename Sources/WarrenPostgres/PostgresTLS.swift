/// What a libpq TLS failure means, in words a user can act on.
///
/// libpq 15 reports TLS failures only as text (no code to switch on), so the reason is recognised by
/// the phrases libpq's `fe-secure-openssl.c` and the server write. Anything unrecognised stays a
/// plain ``PostgresError/Code/connectFailed`` with libpq's own text.
enum PostgresTLS {
    /// The error for a failed connect whose libpq text is `text`, or nil when it is not about TLS.
    static func error(_ text: String, endpoint: String, _ configuration: PostgresConfiguration) -> PostgresError? {
        guard let hint = hint(text, configuration) else { return nil }
        return PostgresError(.tlsFailed, "TLS to PostgreSQL at \(endpoint) failed: \(text); \(hint)")
    }

    private static func hint(_ text: String, _ configuration: PostgresConfiguration) -> String? {
        // With sslmode=prefer or allow libpq tries twice and reports both attempts: the last one
        // ("… failed: password authentication failed") is the answer, not an earlier SSL line.
        var lower = text.lowercased()
        if let last = lower.ranges(of: "connection to server at ").last,
           let failed = lower[last.upperBound...].firstRange(of: " failed: ") {
            lower = String(lower[failed.upperBound...])
        }
        // Not about TLS, though PostgreSQL 14+ ends these with ", no encryption" (the same rule
        // would admit nobody over TLS either): no pg_hba.conf line for this user, host and database.
        if lower.contains("no pg_hba.conf entry") { return nil }
        if lower.contains("certificate verify failed") {
            let trust = configuration.sslRootCert.map { "the CA file \($0)" } ?? "libpq's default root certificate file"
            return "the server's certificate is not trusted by \(trust) (signed by another CA, or expired): set sslrootcert to the CA that signed it, and check that the certificate is current"
        }
        if lower.contains("does not match host name") {
            return "the server's certificate is not valid for '\(configuration.host)' (sslmode=verify-full checks the host name): connect by a name the certificate lists"
        }
        if lower.contains("certificate required") || lower.contains("requires a valid client certificate")
            || lower.contains("alert handshake failure")
        {
            if configuration.sslCert == nil {
                // handshake_failure can also mean no common TLS version or cipher: "most likely".
                return "the server most likely requires a client certificate and none is configured: set sslcert and sslkey"
            }
            return "the server refused the client certificate: check that the server's ssl_ca_file trusts the CA that signed sslcert"
        }
        if lower.contains("unknown ca") || lower.contains("bad certificate") || lower.contains("certificate expired") {
            return "the server refused the client certificate (untrusted or expired): check sslcert against the server's ssl_ca_file"
        }
        if lower.contains("root certificate file") {
            return "sslmode=\(configuration.sslMode) verifies the server: set sslrootcert to the CA that signed the server's certificate"
        }
        if lower.contains("rejects connection"), lower.contains("no encryption") {
            return "the server's pg_hba.conf rejects this user without TLS: set sslmode=require or stricter (verify-full, with sslrootcert)"
        }
        if lower.contains("could not open certificate file"), configuration.sslCert == nil {
            return "with no sslcert libpq looks for a client certificate in ~/.postgresql, and HOME is not readable by this user: set HOME to a readable directory (containers: /), or set sslcert and sslkey"
        }
        if lower.contains("could not load private key file") {
            return "sslkey is not a readable PEM key, or not the key of sslcert"
        }
        if lower.contains("private key file") {
            return "libpq refuses a key others can read: make sslkey mode 0600 (owned by the worker's user) or at most 0640 owned by root (Kubernetes: defaultMode 0440)"
        }
        if lower.contains("server does not support ssl") {
            return "the server has TLS switched off: enable ssl on the server, or use an sslmode that allows plain connections"
        }
        if lower.contains("ssl error") || lower.contains("ssl syscall error") {
            return "the TLS handshake failed: check the server's TLS settings and sslmode"
        }
        return nil
    }
}
