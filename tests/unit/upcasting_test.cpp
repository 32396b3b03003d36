// Schema evolution: the upcaster registry, the binary's registry of every event type, the
// domain's and the sagas' upcasters (given an old payload, when read, then the current event),
// and projections reading through UpcastingProjection.

#include <gtest/gtest.h>

#include <stdexcept>

#include "app/upcasters.hpp"
#include "domain/orders.hpp"
#include "domain/schema.hpp"
#include "eventstore/upcasting.hpp"
#include "projections/upcasting.hpp"
#include "sagas/process.hpp"

namespace ordo::testing {
namespace {

using eventstore::UnknownSchemaVersion;
using eventstore::Upcasters;
using nlohmann::json;

// "Renamed": v1 {"old": x} -> v2 {"new": x} -> v3 {"new": x, "unit": "EUR"}.
Upcasters renamed_registry() {
    Upcasters registry;
    registry.add("Renamed", 1, [](json p) { return json{{"new", p.at("old")}}; });
    registry.add("Renamed", 2, [](json p) {
        p["unit"] = "EUR";
        return p;
    });
    return registry;
}

eventstore::RecordedEvent recorded(std::string type, int version, json payload) {
    eventstore::RecordedEvent e{};
    e.event_id = "e-1";
    e.stream_id = "thing-1";
    e.category = "thing";
    e.version = 1;
    e.type = std::move(type);
    e.schema_version = version;
    e.payload = std::move(payload);
    return e;
}

TEST(Upcasters, RunsTheChainFromTheStoredVersionToTheCurrentOne) {
    const auto registry = renamed_registry();
    EXPECT_EQ(registry.current_version("Renamed"), 3);
    const json current = {{"new", 7}, {"unit", "EUR"}};
    EXPECT_EQ(registry.upcast("e", "Renamed", 1, {{"old", 7}}), current);
    EXPECT_EQ(registry.upcast("e", "Renamed", 2, {{"new", 7}}), current);
    EXPECT_EQ(registry.upcast("e", "Renamed", 3, current), current);

    const auto event = registry.upcast(recorded("Renamed", 1, {{"old", 7}}));
    EXPECT_EQ(event.payload, current);
    EXPECT_EQ(event.schema_version, 3);
}

TEST(Upcasters, RefusesAVersionNewerThanItKnowsOrBelowOneNamingTheEvent) {
    const auto registry = renamed_registry();
    try {
        registry.upcast(recorded("Renamed", 4, {{"newer", 1}}));
        FAIL() << "a version 4 was read";
    } catch (const UnknownSchemaVersion& e) {
        EXPECT_EQ(e.type(), "Renamed");
        EXPECT_EQ(e.version(), 4);
        EXPECT_EQ(e.current(), 3);
        EXPECT_NE(std::string{e.what()}.find("e-1"), std::string::npos) << e.what();
    }
    EXPECT_THROW(registry.upcast(recorded("Renamed", 0, {{"old", 1}})), UnknownSchemaVersion);
}

TEST(Upcasters, PassesTypesItDoesNotKnowThroughUnchanged) {
    const auto registry = renamed_registry();
    EXPECT_FALSE(registry.knows("Other"));
    const auto event = registry.upcast(recorded("Other", 5, {{"x", 1}}));
    EXPECT_EQ(event.payload, (json{{"x", 1}}));
    EXPECT_EQ(event.schema_version, 5);
}

TEST(Upcasters, ADeclaredTypeWithoutStepsIsAtVersionOneAndRefusesNewerOnes) {
    Upcasters registry;
    registry.declare("Plain");
    EXPECT_TRUE(registry.knows("Plain"));
    EXPECT_EQ(registry.current_version("Plain"), 1);
    EXPECT_EQ(registry.upcast("e", "Plain", 1, {{"x", 1}}), (json{{"x", 1}}));
    EXPECT_THROW(registry.upcast("e", "Plain", 2, {{"x", 1}}), UnknownSchemaVersion);
}

TEST(Upcasters, AGapOrARepeatedStepInAChainIsARegistrationError) {
    Upcasters registry;
    auto same = [](json p) { return p; };
    EXPECT_THROW(registry.add("T", 2, same), std::invalid_argument);  // no step from 1
    registry.add("T", 1, same);
    EXPECT_THROW(registry.add("T", 1, same), std::invalid_argument);  // 1 -> 2 exists
    EXPECT_THROW(registry.add("T", 3, same), std::invalid_argument);  // no step from 2
    EXPECT_THROW(registry.add("T", 2, Upcasters::Step{}), std::invalid_argument);
    registry.add("T", 2, same);
    EXPECT_EQ(registry.current_version("T"), 3);
}

TEST(Upcasters, UpcastingNeverChangesTheEventItWasGiven) {
    const auto registry = renamed_registry();
    const auto stored = recorded("Renamed", 1, {{"old", 7}});
    const auto read = registry.upcast(stored);
    EXPECT_EQ(stored.payload, (json{{"old", 7}}));
    EXPECT_EQ(stored.schema_version, 1);
    EXPECT_NE(read.payload, stored.payload);
}

// The binary's registry knows every type Ordo writes, at the version its writers write.
TEST(EventUpcasters, DeclareEveryDomainAndProcessEventAtTheVersionItsWritersWrite) {
    const auto registry = app::event_upcasters();
    for (const auto& schemas : {domain::event_schemas(), sagas::event_schemas()}) {
        for (const auto& schema : schemas) {
            EXPECT_TRUE(registry.knows(schema.type)) << schema.type;
            EXPECT_EQ(registry.current_version(schema.type), schema.version) << schema.type;
        }
    }
    EXPECT_EQ(registry.current_version("OrderPlaced"), 2);
    EXPECT_EQ(registry.current_version("ProcessStarted"), 2);
    EXPECT_EQ(registry.current_version("StockAllocated"), 2);
    EXPECT_EQ(registry.current_version("OrderCancelled"), 1);
    EXPECT_EQ(registry.current_version("StepScheduled"), 1);
    // 12 inventory, payments and orders events + 12 process events + 4 published facts.
    EXPECT_EQ(registry.versions().size(), 12u + 12u + 4u);
    EXPECT_EQ(domain::schema_version(domain::orders::Event{domain::orders::OrderPlaced{}}), 2);
    EXPECT_EQ(domain::schema_version(domain::orders::Event{domain::orders::OrderConfirmed{}}), 1);
}

// Given an OrderPlaced stored at version 1 (prices as bare amounts),
const json kPlacedV1 = {{"order_id", "o-1"},
                        {"customer_id", "c-1"},
                        {"account_id", "a-1"},
                        {"lines",
                         {{{"sku", "sku-1"}, {"quantity", 2}, {"unit_price", 500}},
                          {{"sku", "sku-2"}, {"quantity", 1}, {"unit_price", 1250}}}},
                        {"total", 2250}};

TEST(OrderPlacedUpcaster, TurnsEachLinesAmountIntoAPriceInEuros) {
    // when it is upcast, then each line's price names its currency, and nothing else changed.
    json expected = kPlacedV1;
    expected["lines"][0]["unit_price"] = {{"amount", 500}, {"currency", "EUR"}};
    expected["lines"][1]["unit_price"] = {{"amount", 1250}, {"currency", "EUR"}};
    EXPECT_EQ(domain::order_placed_v1_to_v2(kPlacedV1), expected);
}

TEST(OrderPlacedUpcaster, AVersionOneOrderReadsAsTheCurrentEventAndDecidesAsOne) {
    const auto registry = app::event_upcasters();
    const auto payload = registry.upcast("e", "OrderPlaced", 1, kPlacedV1);
    // The version-1 payload itself no longer decodes: the upcaster is what reads it.
    EXPECT_FALSE(domain::orders::decode("OrderPlaced", kPlacedV1).has_value());
    const auto event = domain::orders::decode("OrderPlaced", payload);
    ASSERT_TRUE(event.has_value());
    const domain::orders::OrderPlaced expected{
        "o-1", "c-1", "a-1", {{"sku-1", 2, 500, "EUR"}, {"sku-2", 1, 1250, "EUR"}}, 2250};
    EXPECT_EQ(std::get<domain::orders::OrderPlaced>(*event), expected);

    // Given that order, when the customer cancels, then the cancellation is requested.
    auto state = domain::orders::evolve({}, *event);
    auto decision =
        domain::orders::decide(state, domain::orders::RequestCancellation{"o-1", "changed"});
    ASSERT_TRUE(std::holds_alternative<domain::orders::Events>(decision));
    EXPECT_EQ(
        std::get<domain::orders::Events>(decision),
        (domain::orders::Events{domain::orders::OrderCancellationRequested{"o-1", "changed"}}));
}

TEST(OrderPlacedUpcaster, LeavesMalformedLinesForTheDecoderToRefuse) {
    json odd = kPlacedV1;
    odd["lines"] = "not lines";
    EXPECT_EQ(domain::order_placed_v1_to_v2(odd), odd);
    odd["lines"] = json::array({json{{"sku", "s"}, {"quantity", 1}, {"unit_price", "free"}}});
    EXPECT_EQ(domain::order_placed_v1_to_v2(odd), odd);
}

TEST(ProcessEventUpcaster, AProcessStartedOfVersionOneReadsWithPricesInEuros) {
    const json v1 = {{"order", kPlacedV1}, {"at_ms", 5}};
    const auto registry = app::event_upcasters();
    const auto event =
        sagas::decode("ProcessStarted", registry.upcast("e", "ProcessStarted", 1, v1));
    ASSERT_TRUE(event.has_value());
    const auto& started = std::get<sagas::ProcessStarted>(*event);
    ASSERT_EQ(started.order.lines.size(), 2u);
    EXPECT_EQ(started.order.lines[0].unit_price, 500);
    EXPECT_EQ(started.order.lines[0].currency, "EUR");

    json fact = {{"fact", "stock_allocated"}, {"reason", ""}, {"order", kPlacedV1}, {"at_ms", 6}};
    auto published =
        sagas::decode("StockAllocated", registry.upcast("e", "StockAllocated", 1, fact));
    ASSERT_TRUE(published.has_value());
    EXPECT_EQ(std::get<sagas::FactPublished>(*published).order.lines[1].currency, "EUR");
}

class Recording final : public projections::Projection {
   public:
    explicit Recording(std::vector<eventstore::RecordedEvent>& seen) : seen_{seen} {}
    std::string name() const override { return "recording"; }
    std::vector<std::string> categories() const override { return {"thing"}; }
    void apply(projections::ReadModelTxn&, const eventstore::RecordedEvent& e) override {
        seen_.push_back(e);
    }

   private:
    std::vector<eventstore::RecordedEvent>& seen_;
};

class NoTxn final : public projections::ReadModelTxn {
   public:
    pqxx::transaction_base& sql() override { throw std::logic_error("no SQL here"); }
    void on_commit(std::function<void()> change) override { change(); }
};

TEST(UpcastingProjection, AppliesEventsInTheCurrentShapeAndFailsTheApplyOfANewerOne) {
    const auto registry = renamed_registry();
    std::vector<eventstore::RecordedEvent> seen;
    std::vector<std::unique_ptr<projections::Projection>> list;
    list.push_back(std::make_unique<Recording>(seen));
    auto wrapped = projections::upcasting(std::move(list), registry);
    ASSERT_EQ(wrapped.size(), 1u);
    EXPECT_EQ(wrapped[0]->name(), "recording");
    EXPECT_EQ(wrapped[0]->categories(), std::vector<std::string>{"thing"});
    NoTxn txn;
    wrapped[0]->apply(txn, recorded("Renamed", 1, {{"old", 3}}));
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].payload, (json{{"new", 3}, {"unit", "EUR"}}));
    EXPECT_EQ(seen[0].schema_version, 3);
    // A newer version fails the apply, which the runtime parks as a dead letter.
    EXPECT_THROW(wrapped[0]->apply(txn, recorded("Renamed", 9, {})), UnknownSchemaVersion);
    EXPECT_EQ(seen.size(), 1u);
}

}  // namespace
}  // namespace ordo::testing
