import Glibc
import Logging
import Testing
@testable import WarrenAMQP

/// What happens before any socket: the wake-up pipe, the owner thread, the commands' descriptions.
@Suite("Connection plumbing")
struct ConnectionPlumbingTests {
    @Test func pipeFailureThrowsInsteadOfTrapping() {
        #expect {
            _ = try WakePipe(makePipe: { _ in errno = EMFILE; return -1 })
        } throws: { error in
            guard let error = error as? AMQPError else { return false }
            return error.code == .connectFailed && error.message.contains("wake-up pipe")
        }
    }

    @Test func wakePipeSignalsAndDrains() throws {
        let pipe = try WakePipe()
        var fds = [pollfd(fd: pipe.readFD, events: Int16(POLLIN), revents: 0)]
        #expect(poll(&fds, 1, 0) == 0)
        pipe.signal()
        pipe.signal()
        #expect(poll(&fds, 1, 0) == 1)
        pipe.drain()
        fds[0].revents = 0
        #expect(poll(&fds, 1, 0) == 0)
    }

    @Test func threadStartFailureThrowsAndClosesTheConnection() async throws {
        let core = try ConnectionCore(configuration: AMQPConfiguration(), logger: Logger(label: "test"))
        await #expect {
            try await ConnectionOwner.start(core: core, startThread: { _ in EAGAIN })
        } throws: { error in
            guard let error = error as? AMQPError else { return false }
            return error.code == .connectFailed && error.message.contains("pthread_create")
        }
        guard case .closed(let reason?) = core.state else {
            Issue.record("state is \(core.state)")
            return
        }
        #expect(reason.code == .connectFailed)
        // Nothing hangs on a connection whose thread never ran.
        await #expect(throws: AMQPError.self) { _ = try await core.perform(.deleteQueue("q")) }
        core.settle(channel: 1, 1, .ack)
    }

    @Test func commandsSayWhatTheyDo() {
        #expect(AMQPCommand.declareQueue(.passive("orders")).what == "declare queue 'orders'")
        #expect(AMQPCommand.verifyConsumer(tag: "t", queue: "orders").what == "verify consumer 't' on queue 'orders'")
        #expect(AMQPCommand.bindQueue(queue: "q", exchange: "x", routingKey: "", arguments: [:]).what == "bind queue 'q' to 'x'")
        #expect(AMQPCommand.setPrefetch(count: 10, global: false).what == "set prefetch 10")
        #expect(AMQPCommand.cancel(consumerTag: "t").what == "cancel consumer 't'")
    }

    @Test func passiveDeclarationOnlyChecks() {
        let passive = QueueDeclaration.passive("orders")
        #expect(passive.passive && !passive.durable && !passive.exclusive && !passive.autoDelete && passive.arguments.isEmpty)
    }
}
