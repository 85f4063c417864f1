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
        "amqps://host/",
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
            "amqps://u:\(password)@host/",
            "amqp://host:\(password)/",
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
}
