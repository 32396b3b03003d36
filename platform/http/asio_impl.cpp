// The one translation unit that compiles the Asio and Beast implementations (Asio's SSL layer
// included); every other file that uses them sees declarations only
// (BOOST_ASIO_SEPARATE_COMPILATION and BOOST_BEAST_SEPARATE_COMPILATION), which keeps each of
// them from paying for the full build.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
