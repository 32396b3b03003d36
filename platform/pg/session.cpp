#include "platform/pg/session.hpp"

#include "platform/pg/pg.hpp"

namespace ordo::platform::pg {

Session::Session(const std::string& url, const std::string& application_name)
    : pqxx::connection{connection_url(url, application_name)} {
    never_reconnect(*this);
}

}  // namespace ordo::platform::pg
