/// The outcome of one statement: rows in text format, and the affected-row count.
public struct PostgresResult: Sendable, Equatable {
    /// Column names, in order (empty for statements that return no rows).
    public var columns: [String]
    /// Rows, each with one value per column in PostgreSQL's text format; `nil` is SQL NULL.
    public var rows: [[String?]]
    /// Rows inserted, updated, deleted, selected... as reported in the command tag (`PQcmdTuples`);
    /// 0 when the command reports none (e.g. `CREATE TABLE`, or `INSERT ... ON CONFLICT DO NOTHING`
    /// that hit a conflict).
    public var affectedRows: Int
    /// The command tag, e.g. `INSERT 0 1`, `SELECT 3`, `CREATE TABLE`.
    public var commandTag: String

    /// Creates a result.
    public init(columns: [String] = [], rows: [[String?]] = [], affectedRows: Int = 0, commandTag: String = "") {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
        self.commandTag = commandTag
    }

    /// The value in `row` under the column named `column`; `nil` for NULL or an unknown column.
    public subscript(row: Int, column: String) -> String? {
        guard rows.indices.contains(row), let index = columns.firstIndex(of: column) else { return nil }
        return rows[row][index]
    }
}
