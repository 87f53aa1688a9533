package fastcgi

// MaxRequestsEnv is the environment variable that asks a FastCGI worker to
// exit after that many requests: php-cgi reads it, and FastCGI libraries
// follow it. A [github.com/ferrygw/ferry/spawn.Pool] of FastCGI workers
// sets MaxRequestsEnv to it, so that its MaxRequests reaches them.
const MaxRequestsEnv = "PHP_FCGI_MAX_REQUESTS"
