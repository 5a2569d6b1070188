import Foundation
@testable import Reports
import TestSupport
import Vocabulary
import XCTest

/// The one CSV writer: RFC 4180 quoting, and appends that are whole rows or
/// nothing, under the file's own header, on a line of their own.
final class CSVTests: XCTestCase {
    var folder: URL!
    let header = ["a", "b", "c"]

    override func setUp() { folder = Launcher.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
    func text(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }
    func write(_ s: String, _ path: String) throws { try Data(s.utf8).write(to: URL(fileURLWithPath: path)) }

    func assertUsage(_ body: @autoclosure () throws -> Void, mentions: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard case let TrainerError.usage(message) = error else { return XCTFail("not a usage error: \(error)", file: file, line: line) }
            XCTAssertTrue(message.contains(mentions), message, file: file, line: line)
            XCTAssertEqual((error as? TrainerError)?.exitCode, 2, file: file, line: line)
        }
    }

    func assertFailed(_ body: @autoclosure () throws -> Void, mentions: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard case let TrainerError.failed(message) = error else { return XCTFail("not a run failure: \(error)", file: file, line: line) }
            XCTAssertTrue(message.contains(mentions), message, file: file, line: line)
            XCTAssertEqual((error as? TrainerError)?.exitCode, 1, file: file, line: line)
        }
    }

    // MARK: - Quoting

    func testFieldsAreQuotedAsRFC4180Says() {
        XCTAssertEqual(CSV.field("plain"), "plain")
        XCTAssertEqual(CSV.field(""), "")
        XCTAssertEqual(CSV.field("a,b"), "\"a,b\"")
        XCTAssertEqual(CSV.field("a\"b"), "\"a\"\"b\"")
        XCTAssertEqual(CSV.field("two\nlines"), "\"two\nlines\"")
        XCTAssertEqual(CSV.field("cr\rhere"), "\"cr\rhere\"")
        XCTAssertEqual(CSV.field("crlf\r\nhere"), "\"crlf\r\nhere\"")
        XCTAssertEqual(CSV.line(["1", "x,y", "say \"hi\""]), "1,\"x,y\",\"say \"\"hi\"\"\"")
        XCTAssertEqual(CSV.document(header: ["h1", "h2"], rows: [["1", "2"], ["3", "4,5"]]), "h1,h2\n1,2\n3,\"4,5\"\n")
    }

    func testSummaryRowQuotesALineBreakInAField() {
        var r = ReportFixture.make()
        r.blasCore = "Haswell\n(second line)"
        XCTAssertTrue(r.csvRow.contains(",\"Haswell\n(second line)\","), r.csvRow)
        XCTAssertEqual(r.csvFields.count, RunReport.csvColumns.count)
        XCTAssertEqual(RunReport.csvHeader, RunReport.csvColumns.joined(separator: ","))
    }

    // MARK: - Appending

    func testAppendWritesTheHeaderOnceThenRows() throws {
        let p = path("runs.csv")
        try CSV.append(row: ["1", "2", "3"], header: header, to: p)
        try CSV.append(row: ["4", "5,6", "7"], header: header, to: p)
        XCTAssertEqual(try text(p), "a,b,c\n1,2,3\n4,\"5,6\",7\n")
        // An empty file gets the header too.
        let empty = path("empty.csv")
        try write("", empty)
        try CSV.append(row: ["1", "2", "3"], header: header, to: empty)
        XCTAssertEqual(try text(empty), "a,b,c\n1,2,3\n")
        // Nothing left behind but the files.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(), ["empty.csv", "runs.csv"])
    }

    func testARowStartsOnANewLineWhenTheFileDoesNotEndInOne() throws {
        let p = path("runs.csv")
        try write("a,b,c\n1,2,3", p)
        try CSV.append(row: ["4", "5", "6"], header: header, to: p)
        XCTAssertEqual(try text(p), "a,b,c\n1,2,3\n4,5,6\n")
        // A header alone without its newline: also fine.
        let q = path("header-only.csv")
        try write("a,b,c", q)
        try CSV.append(row: ["1", "2", "3"], header: header, to: q)
        XCTAssertEqual(try text(q), "a,b,c\n1,2,3\n")
    }

    func testAForeignHeaderIsRefusedBeforeAndAtTheAppend() throws {
        let p = path("other.csv")
        let foreign = "name,value\nx,1\n"
        try write(foreign, p)
        assertUsage(try CSV.checkAppendable(p, header: header), mentions: "has another header (first line: name,value)")
        assertUsage(try CSV.append(row: ["1", "2", "3"], header: header, to: p), mentions: "has another header")
        XCTAssertEqual(try text(p), foreign, "left alone")
        // A header with a CRLF line end is the same header.
        let crlf = path("crlf.csv")
        try write("a,b,c\r\n1,2,3\r\n", crlf)
        XCTAssertNoThrow(try CSV.checkAppendable(crlf, header: header))
        // The summary CSV's own check.
        assertUsage(try RunReport.checkCSVAppendable(p), mentions: "--csv \(p) has another header")
    }

    func testCheckAppendableAcceptsNewAndOwnFilesAndRefusesBadPaths() throws {
        XCTAssertNoThrow(try CSV.checkAppendable(path("new.csv"), header: header))
        let own = path("own.csv")
        try CSV.append(row: ["1", "2", "3"], header: header, to: own)
        XCTAssertNoThrow(try CSV.checkAppendable(own, header: header))
        XCTAssertNoThrow(try RunReport.checkCSVAppendable(path("summary.csv")))
        assertUsage(try CSV.checkAppendable(path("missing/runs.csv"), header: header), mentions: "does not exist")
        assertUsage(try CSV.checkAppendable(folder.path, header: header), mentions: "is a folder")
        let file = path("plain-file")
        try write("x", file)
        assertUsage(try CSV.checkAppendable(file + "/runs.csv", header: header), mentions: "does not exist")
    }

    /// A filesystem that fills up halfway through the new file: the CSV is
    /// unchanged, no temporary file is left, and the error says why.
    func testAFullFilesystemLeavesTheFileAsItWas() throws {
        let p = path("runs.csv")
        try CSV.append(row: ["1", "2", "3"], header: header, to: p)
        let before = try Data(contentsOf: URL(fileURLWithPath: p))
        func fillsUp(_ fd: Int32, _ data: Data) throws {
            try writeAll(fd, data.prefix(data.count / 2))
            throw WriteFailure(reason: String(cString: strerror(ENOSPC)))
        }
        assertFailed(try CSV.append(row: ["4", "5", "6"], header: header, to: p, flag: "--csv", writer: fillsUp),
                     mentions: "cannot write \(p): No space left on device")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: p)), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["runs.csv"])
        // A new file that cannot be written is not created either.
        let fresh = path("fresh.csv")
        assertFailed(try CSV.append(row: ["1", "2", "3"], header: header, to: fresh, flag: "--csv", writer: fillsUp),
                     mentions: "No space left on device")
        XCTAssertFalse(FileManager.default.fileExists(atPath: fresh))
    }

    func testWritingToAFullDeviceThrowsInsteadOfTrapping() throws {
        let fd = open("/dev/full", O_WRONLY)
        guard fd >= 0 else { throw XCTSkip("no /dev/full") }
        defer { close(fd) }
        XCTAssertThrowsError(try writeAll(fd, Data(repeating: 65, count: 100))) { e in
            XCTAssertEqual((e as? WriteFailure)?.reason, String(cString: strerror(ENOSPC)))
        }
    }

    func testAppendIntoAMissingFolderFailsCleanly() {
        let p = path("missing/runs.csv")
        assertFailed(try CSV.append(row: ["1", "2", "3"], header: header, to: p), mentions: "cannot write \(p)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("missing").path))
    }

    func testAppendKeepsPermissionsAndFollowsALink() throws {
        let target = path("runs.csv")
        try CSV.append(row: ["1", "2", "3"], header: header, to: target)
        XCTAssertEqual(chmod(target, 0o600), 0)
        let link = path("link.csv")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        try CSV.append(row: ["4", "5", "6"], header: header, to: link)
        XCTAssertEqual(try text(target), "a,b,c\n1,2,3\n4,5,6\n")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link), target, "still a link")
        var info = stat()
        XCTAssertEqual(stat(target, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o600)
    }

    func testRunReportAppendsItsSummaryRow() throws {
        let p = path("summary.csv")
        let r = ReportFixture.make(ranks: 2, batchPerRank: 4, step: 0.5)
        try r.appendCSV(to: p)
        try r.appendCSV(to: p)
        let lines = try text(p).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines, [RunReport.csvHeader, r.csvRow, r.csvRow])
        XCTAssertTrue(lines[1].contains(",vgg11,32,10,16,train,2,1,4,8,"), lines[1])
    }
}
