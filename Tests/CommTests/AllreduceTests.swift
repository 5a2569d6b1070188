import Foundation
import Reports
import TestSupport
import XCTest

/// The communication layer, exercised for real: `vgg-dp allreduce-bench`
/// under mpirun checks every size's sum on rank-dependent data.
final class AllreduceTests: XCTestCase {
    func rows(_ text: String) -> [[String]] {
        text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.hasPrefix("+") }
            .map { $0.split(separator: " ").map(String.init) }
            .filter { $0.count == 8 && Int($0[0]) != nil }
    }

    func testAllreduceSumsCorrectlyOnTwoAndThreeRanks() throws {
        for ranks in [2, 3] {
            let r = try Launcher.run(["allreduce-bench", "--model", "vgg11", "--image-size", "32", "--width-divisor", "16",
                                      "--classes", "10", "--iterations", "2"], ranks: ranks)
            XCTAssertEqual(r.status, 0, r.all)
            let table = rows(r.stdout)
            // 4 B doubling up to the 452,360-byte gradient: 18 sizes, then whole and bucketed.
            XCTAssertEqual(table.count, 20, r.stdout)
            for row in table {
                XCTAssertEqual(row[6], "ok", "wrong sum at \(row[0]) bytes on \(ranks) ranks")
                let algbw = Double(row[4])!, busbw = Double(row[5])!
                let n = Double(ranks)
                XCTAssertEqual(busbw, algbw * 2 * (n - 1) / n, accuracy: 0.002 + 1e-3 * algbw)
                XCTAssertGreaterThanOrEqual(try XCTUnwrap(Double(row[7]), "host_cpu_ms at \(row[0]) bytes: \(row[7])"), 0)
            }
            XCTAssertEqual(table.last?[0], "452360")
            XCTAssertTrue(r.stdout.contains("\(ranks) ranks"))
        }
    }

    func testPolledAllreduceSumsCorrectlyAndRecordsItsWaitAndHostCPU() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let json = folder.appendingPathComponent("fit.json").path
        let tiny = ["--model", "vgg11", "--image-size", "32", "--width-divisor", "16", "--classes", "10", "--iterations", "2"]
        let r = try Launcher.run(["allreduce-bench"] + tiny + ["--comm-wait", "polling", "--json", json], ranks: 2)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("# wait: MPI_Iallreduce tested every 200 µs"), r.stdout)
        XCTAssertTrue(rows(r.stdout).allSatisfy { $0[6] == "ok" }, r.stdout)
        let record = try AllreduceBenchRecord.read(from: json)
        XCTAssertEqual(record.commWait, .polling)
        XCTAssertTrue(record.rows.allSatisfy { ($0.hostCpuSeconds ?? -1) >= 0 }, "every row holds its host CPU")
        XCTAssertNil(record.fit?.cost.hostCpuPerByte, "one host: no link, so no CPU per byte on it")

        let auto = try Launcher.run(["allreduce-bench"] + tiny + ["--comm-wait", "auto"], ranks: 2)
        XCTAssertEqual(auto.status, 2, auto.all)
        XCTAssertTrue(auto.stderr.contains("give blocking or polling"), auto.stderr)
    }

    func testSingletonRunsWithoutMpirun() throws {
        let r = try Launcher.run(["allreduce-bench", "--model", "vgg11", "--image-size", "32", "--width-divisor", "16",
                                  "--classes", "10", "--iterations", "1", "--min-bytes", "1024"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(rows(r.stdout).allSatisfy { $0[6] == "ok" })
        XCTAssertTrue(r.stdout.contains("1 ranks"))
    }
}
