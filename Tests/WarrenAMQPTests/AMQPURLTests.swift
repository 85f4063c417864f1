import Testing
@testable import WarrenAMQP

@Suite("AMQP URL parsing")
struct AMQPURLTests {
    @Test func fullURL() throws {
        let c = try AMQPConfiguration(url: "amqp://alice:s3cret@broker.example:5673/prod?heartbeat=5&connection_timeout=2500")
        #expect(c.host == "broker.example")
        #expect(c.port == 5673)
        #expect(c.username == "alice")
        #expect(c.password == "s3cret")
        #expect(c.virtualHost == "prod")
        #expect(c.heartbeat == 5)
        #expect(c.connectTimeout == .milliseconds(2500))
    }

    @Test func defaults() throws {
        let c = try AMQPConfiguration(url: "amqp://")
        #expect(c.host == "127.0.0.1")
        #expect(c.port == 5672)
        #expect(c.username == "guest")
        #expect(c.password == "guest")
        #expect(c.virtualHost == "/")
        let d = try AMQPConfiguration(url: "amqp://rabbit")
        #expect(d.host == "rabbit" && d.port == 5672 && d.virtualHost == "/")
    }

    @Test func percentEncoding() throws {
        let c = try AMQPConfiguration(url: "amqp://us%40er:p%3Ass%2Fw@h/%2F")
        #expect(c.username == "us@er")
        #expect(c.password == "p:ss/w")
        #expect(c.virtualHost == "/")
        let v = try AMQPConfiguration(url: "amqp://h/my%20vhost")
        #expect(v.virtualHost == "my vhost")
        let at = try AMQPConfiguration(url: "amqp://u:p@ss@h")
        #expect(at.password == "p@ss" && at.host == "h")
    }

    @Test func ipv6() throws {
        let c = try AMQPConfiguration(url: "amqp://[::1]:5674/")
        #expect(c.host == "::1")
        #expect(c.port == 5674)
        #expect(c.redactedURL == "amqp://guest:***@[::1]:5674/%2F")
    }

    @Test(arguments: [
        "not a url",
        "http://host/",
        "amqps://host/?verify=maybe",
        "amqp://host/?cacertfile=/etc/hostname",
        "amqp://host:99999/",
        "amqp://host:abc/",
        "amqp://host/a/b",
        "amqp://host/%zz",
        "amqp://[::1/",
        "amqp://host/?heartbeat=-1",
        "amqp://host/#frag",
    ])
    func rejectsBadURLs(_ url: String) {
        #expect(throws: AMQPError.self) { try AMQPConfiguration(url: url) }
    }

    @Test func errorsNeverEchoThePassword() {
        let password = "hunter2-very-secret"
        for url in [
            "amqp://u:\(password)@host:bad/",
            "amqp://u:\(password)@host/a/b",
            "amqp://u:\(password)%zz@host/",
            "amqps://u:\(password)@host/?certfile=/nonexistent/client.pem&keyfile=/nonexistent/client.key",
            "amqp://host:\(password)/",
            "amqp://u:\(password)@a:1/,amqp://u:other@b:2/",
        ] {
            do {
                _ = try AMQPConfiguration(url: url)
                Issue.record("expected \(url.count)-char URL to fail")
            } catch {
                #expect(error.code == .invalidURL)
                #expect(!error.description.contains(password))
                #expect(!error.description.contains("hunter"))
            }
        }
        let c = try? AMQPConfiguration(url: "amqp://u:\(password)@host/")
        #expect(c?.description.contains(password) == false)
        #expect(c?.redactedURL == "amqp://u:***@host:5672/%2F")
    }

    // MARK: TLS and several brokers

    @Test func amqpsDefaultsToPort5671AndVerifiesPeer() throws {
        let c = try AMQPConfiguration(url: "amqps://u:p@broker.example/v")
        #expect(c.port == 5671)
        #expect(c.tls == AMQPTLSConfiguration())
        #expect(c.tls?.verifyPeer == true)
        #expect(c.tls?.caCertificateFile == nil)
        #expect(c.redactedURL == "amqps://u:***@broker.example:5671/v")
        #expect(try AMQPConfiguration(url: "amqp://h/").tls == nil)
    }

    @Test func tlsQueryParameters() throws {
        // Any readable files do for parsing; the contents are checked at connect time.
        let c = try AMQPConfiguration(url: "amqps://h:6671/?cacertfile=/etc/hostname&certfile=/etc/passwd&keyfile=%2Fetc%2Fgroup&verify=verify_none&server_name_indication=rabbit.example")
        #expect(c.tls?.caCertificateFile == "/etc/hostname")
        #expect(c.tls?.certificateFile == "/etc/passwd")
        #expect(c.tls?.keyFile == "/etc/group")
        #expect(c.tls?.verifyPeer == false)
        #expect(c.tls?.serverName == "rabbit.example")
        #expect(c.tls?.sendsServerName == true)
        let d = try AMQPConfiguration(url: "amqps://h/?server_name_indication=disable&verify=verify_peer")
        #expect(d.tls?.sendsServerName == false)
        #expect(d.tls?.verifyPeer == true)
    }

    @Test(arguments: ["cacertfile", "certfile", "keyfile"])
    func unreadableCertificateFileNamesTheParameter(_ key: String) {
        var query = "\(key)=/nonexistent/warren.pem"
        if key == "certfile" { query += "&keyfile=/etc/hostname" }
        if key == "keyfile" { query += "&certfile=/etc/hostname" }
        do {
            _ = try AMQPConfiguration(url: "amqps://u:secret@h/?\(query)")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(error.message.contains("'\(key)'"))
            #expect(error.message.contains("/nonexistent/warren.pem"))
            #expect(!error.message.contains("secret"))
        }
    }

    @Test func clientCertificateNeedsItsKey() {
        #expect(throws: AMQPError.self) { try AMQPConfiguration(url: "amqps://h/?certfile=/etc/hostname") }
        #expect(throws: AMQPError.self) { try AMQPConfiguration(url: "amqps://h/?keyfile=/etc/hostname") }
    }

    @Test func severalBrokers() throws {
        let c = try AMQPConfiguration(url: "amqp://u:p%2C1@a:5672/v?heartbeat=3, amqp://u:p%2C1@b:5673/v?heartbeat=3,amqp://u:p%2C1@[::1]/v?heartbeat=3")
        #expect(c.endpoints == [AMQPEndpoint(host: "a", port: 5672), AMQPEndpoint(host: "b", port: 5673), AMQPEndpoint(host: "::1", port: 5672)])
        #expect(c.host == "a")
        #expect(c.password == "p,1")
        #expect(c.heartbeat == 3)
        #expect(c.redactedURL == "amqp://u:***@a:5672/v,amqp://u:***@b:5673/v,amqp://u:***@[::1]:5672/v")
        // A comma inside a password is not a separator.
        let d = try AMQPConfiguration(url: "amqp://u:p,1@a/")
        #expect(d.password == "p,1")
        #expect(d.endpoints.count == 1)
    }

    @Test(arguments: [
        "amqp://u:p@a/,amqp://u:q@b/",
        "amqp://u:p@a/v,amqp://u:p@b/w",
        "amqp://a/,amqps://b/",
        "amqp://a/?heartbeat=1,amqp://b/",
        "amqp://a/,",
        "amqp://a/,,amqp://b/",
    ])
    func brokersOfAListMustAgree(_ url: String) {
        #expect(throws: AMQPError.self) { try AMQPConfiguration(url: url) }
    }
}
