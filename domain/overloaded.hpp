#pragma once

// Overloaded: the helper for visiting a std::variant with one lambda per alternative.

namespace ordo::domain {

// Visits a variant with one lambda per alternative: std::visit(Overloaded{...}, v).
template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace ordo::domain
