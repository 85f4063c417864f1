import Foundation
import Testing
import WarrenAMQP
import WarrenTestSupport

extension Integration {
    @Suite("AMQP endpoint list against a real RabbitMQ")
    struct AMQPEndpointFailoverTests {
        /// A broker that accepts TCP but never answers (a hung node: the kernel completes the TCP
        /// handshake into the listen backlog) must not fail the connection when a good broker follows
        /// it in the list: the client gives it up after the handshake timeout and moves on.
        @Test func aBrokerThatNeverAnswersTheHandshakeIsSkippedForTheNext() async throws {
            let hung = try SilentListener()
            defer { hung.close() }
            var config = try AMQPConfiguration(url: Servers.amqpURL, connectionName: "warren-tests")
            let good = config.endpoints[0]
            config.endpoints = [AMQPEndpoint(host: "127.0.0.1", port: hung.port), good]
            config.shufflesEndpoints = false
            config.connectTimeout = .seconds(1)
            let clock = ContinuousClock()
            let start = clock.now
            let connection = try await AMQPConnection.connect(configuration: config)
            let took = clock.now - start
            #expect(connection.connectedEndpoint == good, "connected to \(connection.connectedEndpoint)")
            #expect(took < .seconds(4), "the hung broker was given up after the 1 s handshake timeout: \(took)")
            await connection.close()
        }
    }
}

/// A TCP socket listening on 127.0.0.1 that never accepts: connections complete (the kernel's
/// backlog) and then hear nothing.
final class SilentListener: Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Servers.Failure("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(fd, address, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, address, &length) == 0
            }
        }
        guard bound else {
            Glibc.close(fd)
            throw Servers.Failure("bind/listen on 127.0.0.1: errno \(errno)")
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Glibc.close(fd) }
}
