#!/usr/bin/php-cgi -dcgi.force_redirect=0
<?php
// php-cgi runs this file as a CGI script: it finds it through SCRIPT_FILENAME.
// cgi.force_redirect=0 because ferry, not Apache's mod_actions, invokes it.
header("Content-Type: text/html; charset=utf-8");
$name = htmlspecialchars($_GET["name"] ?? "world");
echo "<!doctype html><title>hello.php</title><h1>Hello, $name, from PHP ", PHP_VERSION, "</h1>\n";
echo "<p><a href=\"/\">back</a></p>\n";
