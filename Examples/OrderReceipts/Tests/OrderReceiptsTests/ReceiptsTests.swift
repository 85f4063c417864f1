import OrderReceipts
import Testing
import Warren
import WarrenTesting

@Suite struct ReceiptsTests {
    @Test func anOrderBecomesAReceiptWithItsCorrelationID() async throws {
        let tester = SubscriptionTester(receipts)
        let order = try TestMessage.json(OrderPlaced(id: "o-1", cents: 1205), properties: .init(correlationID: "c-9"),
                                         exchange: "shop", routingKey: "order.eu.placed")
        let result = await tester.deliver(order)
        #expect(result.outcome == .ack)
        let published = try #require(result.published.first)
        #expect(published.exchange == "shop" && published.routingKey == "receipt.created")
        #expect(published.properties.correlationID == "c-9")
        let receipt = try published.decode(Receipt.self)
        #expect(receipt == Receipt(order: "o-1", total: "12.05"))
    }

    @Test func aBadOrderIsDeadLetteredAndAnUnconfirmedReceiptIsRetried() async throws {
        let tester = SubscriptionTester(receipts)
        #expect(try await tester.deliver(.json(OrderPlaced(id: "o-2", cents: -1))).outcome == .deadLetter(reason: "negative amount"))
        if case .deadLetter = await tester.deliver(TestMessage(body: Array("{}".utf8))).outcome {} else { Issue.record("undecodable") }
        tester.failPublishes()
        if case .retry = try await tester.deliver(.json(OrderPlaced(id: "o-3", cents: 1))).outcome {} else { Issue.record("retry") }
    }
}
