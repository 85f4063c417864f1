import NIOCore
import NIOHTTP1
import Testing

@testable import WarrenHTTP

/// ``HTTPConnectionStateMachine`` alone: events in, actions and the wanted timer out.
@Suite struct ConnectionStateMachineTests {
    private typealias Machine = HTTPConnectionStateMachine

    private func head(_ uri: String = "/hello", version: HTTPVersion = .http1_1, headers: HTTPHeaders = [:]) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: .GET, uri: uri, headers: headers)
    }

    /// Takes a request from its first byte to ``Machine/requestEnd()``; returns the routed path.
    private func receive(_ machine: inout Machine, _ head: HTTPRequestHead) -> String? {
        machine.requestStarted()
        guard case .none = machine.requestHead(head), case .route(let request) = machine.requestEnd() else {
            return nil
        }
        return request.path
    }

    private func closing(of action: Machine.Action) -> Machine.Closing?? {
        switch action {
        case .write(_, _, let closing): closing
        case .reject(_, let closing), .close(let closing): .some(closing)
        case .none, .route: nil
        }
    }

    @Test func timersFollowTheState() {
        var machine = Machine()
        #expect(machine.timer == .idle)
        machine.requestStarted()
        #expect(machine.timer == .read)
        _ = machine.requestHead(self.head())
        #expect(machine.timer == .read)
        _ = machine.requestEnd()
        #expect(machine.timer == nil, "no timer while a response is outstanding")
        machine.requestStarted()  // the next request, pipelined
        #expect(machine.timer == nil)
        _ = machine.responseReady(.text("ok"))
        #expect(machine.timer == .read, "the pipelined request is incomplete")
    }

    @Test func keepAliveResponseLeavesTheConnectionOpen() {
        var machine = Machine()
        #expect(self.receive(&machine, self.head("/a?x=1")) == "/a")
        let action = machine.responseReady(.text("ok"))
        guard case .write(let response, let head, closing: nil) = action else {
            Issue.record("expected a keep-alive write, got \(action)")
            return
        }
        #expect(response.status == .ok)
        #expect(head.uri == "/a?x=1")
        guard case .none = machine.responseWritten() else {
            Issue.record("nothing is due after a keep-alive response")
            return
        }
        #expect(machine.timer == .idle)
    }

    @Test func connectionCloseRequestClosesLingering() {
        var machine = Machine()
        _ = self.receive(&machine, self.head(headers: ["Connection": "close"]))
        #expect(self.closing(of: machine.responseReady(.text("ok"))) == .some(.lingering))
        #expect(machine.timer == .linger)
        #expect(self.closing(of: machine.inputClosed()) == .some(.immediately))
        #expect(machine.timer == nil)
    }

    @Test func limitViolationWhileRespondingWaitsUntilTheResponseIsWritten() {
        var machine = Machine()
        _ = self.receive(&machine, self.head())
        machine.requestStarted()
        guard case .none = machine.limitExceeded(.uriTooLong) else {
            Issue.record("the rejection must wait for the response in flight")
            return
        }
        guard case .write(_, _, closing: nil) = machine.responseReady(.text("ok")) else {
            Issue.record("the response before the rejection keeps the connection open")
            return
        }
        let action = machine.responseWritten()
        guard case .reject(let rejection, closing: .lingering) = action else {
            Issue.record("expected the 414 now, got \(action)")
            return
        }
        #expect(rejection.status == .uriTooLong)
        #expect(rejection.isUnparsed)
    }

    @Test func requestPipelinedBehindTheResponseComesBeforeAPendingRejection() {
        var machine = Machine()
        _ = self.receive(&machine, self.head("/first"))
        machine.requestStarted()
        _ = machine.limitExceeded(.requestHeaderFieldsTooLarge)
        _ = machine.responseReady(.text("first"))
        // HTTPServerPipelineHandler hands over the request it held, from inside the write.
        #expect(self.receive(&machine, self.head("/second")) == "/second")
        guard case .none = machine.responseWritten() else {
            Issue.record("the held request is answered before the rejection")
            return
        }
        _ = machine.responseReady(.text("second"))
        guard case .reject(let rejection, _) = machine.responseWritten() else {
            Issue.record("the rejection is due once nothing is held")
            return
        }
        #expect(rejection.status == .requestHeaderFieldsTooLarge)
    }

    @Test func bodyAndVersionAreRejectedAtTheHead() {
        var body = Machine()
        let action = body.requestHead(self.head(headers: ["Content-Length": "5"]))
        guard case .reject(let rejection, closing: .lingering) = action else {
            Issue.record("expected 413, got \(action)")
            return
        }
        #expect(rejection.status == .payloadTooLarge)
        #expect(!rejection.isUnparsed)
        #expect(!Machine.announcesBody(["Content-Length": " 0 "]))
        #expect(Machine.announcesBody(["Content-Length": "x"]))

        var version = Machine()
        guard case .reject(let rejected, _) = version.requestHead(self.head(version: .http2)) else {
            Issue.record("expected 505")
            return
        }
        #expect(rejected.status == .httpVersionNotSupported)
    }

    @Test func halfCloseWhileRespondingClosesAfterTheResponse() {
        var machine = Machine()
        _ = self.receive(&machine, self.head())
        guard case .none = machine.inputClosed() else {
            Issue.record("the response in flight is still written")
            return
        }
        #expect(self.closing(of: machine.responseReady(.text("ok"))) == .some(.immediately))
    }

    @Test func timersOnlyFireInTheStateThatArmedThem() {
        var machine = Machine()
        guard case .none = machine.timerFired(.read) else {
            Issue.record("a stale read timer must not close an idle connection")
            return
        }
        #expect(self.closing(of: machine.timerFired(.idle)) == .some(.immediately))
        machine.channelInactive()
        guard case .none = machine.responseReady(.text("late")) else {
            Issue.record("a late async response is dropped")
            return
        }
    }
}
