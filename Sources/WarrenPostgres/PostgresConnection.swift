import CLibPQ
import WarrenOwnedConnection
import WarrenSystem

import Glibc

/// The libpq side of a ``PostgresClient``'s ``OwnedConnection``: connecting, queries, failures.
///
/// Every method runs on the client's owner thread. The `PGconn` is opened with the non-blocking
/// API, and every wait is a `poll(2)` on `PQsocket` bounded by a deadline.
struct PostgresConnection: ConnectionDriver {
    let configuration: PostgresConfiguration

    /// Runs one statement, connecting first if needed.
    func execute(_ sql: String, _ parameters: [String?], in session: OwnedConnection<Self>.Session) throws(PostgresError) -> PostgresResult {
        if let index = parameters.firstIndex(where: { $0?.utf8.contains(0) == true }) {
            throw PostgresError(.queryFailed, "parameter $\(index + 1) contains a NUL byte, which PostgreSQL text cannot hold")
        }
        let connection = try session.connection()
        return try query(sql, parameters, on: connection, in: session)
    }

    // MARK: - ConnectionDriver

    /// Closes a connection (`PQfinish`; it does not block: the socket is non-blocking).
    func disconnect(_ connection: OpaquePointer) { PQfinish(connection) }
    func dropsConnection(_ failure: PostgresError) -> Bool { failure.droppedConnection }
    func isTimeout(_ failure: PostgresError) -> Bool { failure.code == .timeout }

    func failure(_ call: String, queuedBehind timeout: PostgresError) -> PostgresError {
        PostgresError(timeout.code, "\(timeout.message) (\(call) was queued behind it and not sent)")
    }

    var shutDownFailure: PostgresError {
        PostgresError(.clientShutDown, "the PostgreSQL client was shut down; create a new one")
    }

    // MARK: - Connect

    func connect() throws(PostgresError) -> OpaquePointer {
        let deadline = MonotonicClock.now + configuration.connectTimeout
        let endpoint = configuration.endpoint
        guard let connection = Self.start(configuration.connectionParameters) else {
            throw PostgresError(.connectFailed, "could not allocate a libpq connection for PostgreSQL at \(endpoint)")
        }
        do throws(PostgresError) {
            try finishConnecting(connection, deadline: deadline)
        } catch {
            PQfinish(connection)
            throw error
        }
        return connection
    }

    /// `PQconnectStartParams` with the keyword/value arrays (`expand_dbname` off: the database
    /// name is never parsed as a connection string).
    private static func start(_ parameters: [(String, String)]) -> OpaquePointer? {
        let keywords = parameters.map { strdup($0.0) }
        let values = parameters.map { strdup($0.1) }
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let keywordPointers = keywords.map { UnsafePointer($0) } + [nil]
        let valuePointers = values.map { UnsafePointer($0) } + [nil]
        return keywordPointers.withUnsafeBufferPointer { k in
            valuePointers.withUnsafeBufferPointer { v in
                PQconnectStartParams(k.baseAddress, v.baseAddress, 0)
            }
        }
    }

    /// Drives `PQconnectPoll` until the connection is up, polling the socket until `deadline`.
    private func finishConnecting(_ connection: OpaquePointer, deadline: MonotonicClock.Instant) throws(PostgresError) {
        let endpoint = configuration.endpoint
        guard PQstatus(connection) != CONNECTION_BAD else {
            let text = errorText(connection)
            throw PostgresTLS.error(text, endpoint: endpoint, configuration)
                ?? PostgresError(.connectFailed, "could not connect to PostgreSQL at \(endpoint): \(text); check that it is running and reachable")
        }
        // Notices (e.g. "relation already exists, skipping") would go to stderr by default.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        var state = PGRES_POLLING_WRITING
        while state != PGRES_POLLING_OK {
            switch state {
            case PGRES_POLLING_READING, PGRES_POLLING_WRITING:
                let socket = PQsocket(connection)
                let events = Int16(state == PGRES_POLLING_READING ? POLLIN : POLLOUT)
                guard socket >= 0, waitForSocket(socket, events: events, until: deadline) else {
                    throw PostgresError(.timeout, "could not connect to PostgreSQL at \(endpoint) within \(configuration.connectTimeout.secondsText); check that it is up and not overloaded")
                }
            case PGRES_POLLING_FAILED:
                let text = errorText(connection)
                throw PostgresTLS.error(text, endpoint: endpoint, configuration)
                    ?? PostgresError(.connectFailed, "could not connect to PostgreSQL at \(endpoint): \(text); check that it is running, reachable, and that the user, password and database are right")
            default:
                break
            }
            state = PQconnectPoll(connection)
        }
        guard PQsetnonblocking(connection, 1) == 0 else {
            throw PostgresError(.connectFailed, "could not switch the PostgreSQL connection to non-blocking mode: \(errorText(connection))")
        }
    }

    // MARK: - Query

    /// Sends the statement with `PQsendQueryParams` (text parameters, text results) and collects
    /// its result, every wait bounded by `queryTimeout`.
    private func query(_ sql: String, _ parameters: [String?], on connection: OpaquePointer,
                       in session: OwnedConnection<Self>.Session) throws(PostgresError) -> PostgresResult {
        let deadline = MonotonicClock.now + configuration.queryTimeout
        guard Self.send(sql, parameters, on: connection) else {
            if PQstatus(connection) == CONNECTION_OK {  // refused by libpq itself, e.g. too many parameters
                throw PostgresError(.queryFailed, "libpq refused the statement: \(errorText(connection))")
            }
            throw lostConnection(connection, "could not send the query")
        }
        // Flush what libpq could not write at once; read meanwhile so the server never stalls on us.
        while true {
            let flushed = PQflush(connection)
            if flushed == 0 { break }
            if flushed < 0 { throw lostConnection(connection, "could not send the query") }
            guard waitForSocket(PQsocket(connection), events: Int16(POLLIN | POLLOUT), until: deadline) else {
                throw timedOut(connection)
            }
            if PQconsumeInput(connection) == 0 { throw lostConnection(connection, "reading the answer failed") }
        }
        var result: PostgresResult?
        var serverError: PostgresError?
        while true {
            while PQisBusy(connection) != 0 {
                guard waitForSocket(PQsocket(connection), events: Int16(POLLIN), until: deadline) else {
                    throw timedOut(connection)
                }
                if PQconsumeInput(connection) == 0 { throw lostConnection(connection, "reading the answer failed") }
            }
            guard let pgResult = PQgetResult(connection) else { break }
            defer { PQclear(pgResult) }
            switch PQresultStatus(pgResult) {
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
                result = Self.convert(pgResult)
            case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR:
                if serverError == nil { serverError = Self.serverError(pgResult) }
            case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
                // The connection is in COPY mode; leaving it cleanly needs the COPY protocol.
                session.close()
                throw PostgresError(.queryFailed, "COPY is not supported by this client; the connection was closed")
            default:
                throw lostConnection(connection, "the server sent an answer libpq could not understand")
            }
        }
        if PQstatus(connection) != CONNECTION_OK {
            if let serverError {
                throw PostgresError(.connectionClosed, "PostgreSQL at \(configuration.endpoint) closed the connection: \(serverError.message); the next call reconnects", sqlState: serverError.sqlState)
            }
            throw lostConnection(connection, "the connection broke")
        }
        if var serverError {
            serverError.message = "PostgreSQL rejected the statement: \(serverError.message)"
            throw serverError
        }
        return result ?? PostgresResult()
    }

    private static func send(_ sql: String, _ parameters: [String?], on connection: OpaquePointer) -> Bool {
        let values = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { values.forEach { free($0) } }
        let pointers = values.map { $0.map { UnsafePointer($0) } }
        return pointers.withUnsafeBufferPointer { buffer in
            PQsendQueryParams(connection, sql, Int32(parameters.count), nil, buffer.baseAddress, nil, nil, 0) == 1
        }
    }

    private static func convert(_ result: OpaquePointer) -> PostgresResult {
        let columnCount = PQnfields(result)
        let rowCount = PQntuples(result)
        let columns = (0..<columnCount).map { String(cString: PQfname(result, $0)) }
        let rows = (0..<rowCount).map { row in
            (0..<columnCount).map { column -> String? in
                if PQgetisnull(result, row, column) != 0 { return nil }
                let length = Int(PQgetlength(result, row, column))
                return String(decoding: UnsafeRawBufferPointer(start: PQgetvalue(result, row, column), count: length), as: UTF8.self)
            }
        }
        return PostgresResult(columns: columns, rows: rows,
                              affectedRows: Int(String(cString: PQcmdTuples(result))) ?? 0,
                              commandTag: String(cString: PQcmdStatus(result)))
    }

    private static func serverError(_ result: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
        }
        let message = field("M") ?? oneLine(String(cString: PQresultErrorMessage(result)))
        return PostgresError(.queryFailed, message.isEmpty ? "unknown server error" : message,
                             sqlState: field("C"), detail: field("D"))
    }

    // MARK: - Failures

    /// A timeout: fires a cancel for the running query; the caller then drops the connection.
    private func timedOut(_ connection: OpaquePointer) -> PostgresError {
        PostgresCancel.request(for: connection)
        return PostgresError(.timeout, "PostgreSQL at \(configuration.endpoint) did not answer within \(configuration.queryTimeout.secondsText); the query was cancelled, the connection dropped, and the next call reconnects")
    }

    private func lostConnection(_ connection: OpaquePointer, _ what: String) -> PostgresError {
        PostgresError(.connectionClosed, "\(what) on the connection to PostgreSQL at \(configuration.endpoint): \(errorText(connection)); the connection was dropped and the next call reconnects")
    }

    /// libpq's last error message on one line, with the password (if 4+ characters) masked.
    private func errorText(_ connection: OpaquePointer) -> String {
        var text = Self.oneLine(String(cString: PQerrorMessage(connection)))
        if let password = configuration.password, password.count >= 4 {
            text = text.replacing(password, with: "***")
        }
        return text.isEmpty ? "unknown error" : text
    }

    /// libpq's multi-line message as one line: lines joined, runs of spaces collapsed, and the
    /// `connection to server at "host", port N failed: ` prefix dropped (messages name the endpoint).
    private static func oneLine(_ text: String) -> String {
        var line = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        if line.hasPrefix("connection to server at "), let failed = line.firstRange(of: " failed: ") {
            line = String(line[failed.upperBound...])
        }
        return line
    }
}
