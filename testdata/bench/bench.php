#!/usr/bin/php-cgi -dcgi.force_redirect=0
<?php
// ferry bench app, PHP: the same file runs per request (php-cgi as a CGI
// script, through SCRIPT_FILENAME) and in long-lived workers (php-cgi as a
// FastCGI worker spawned by ferry, php-fpm).
// GET /            -> "Hello, world"
// GET /?rows=N&name=S -> an HTML page of N rows (the "realistic" variant)
$rows = $_GET['rows'] ?? '';
if (!preg_match('/^[0-9]+$/', $rows)) {
	header('Content-Type: text/plain');
	echo "Hello, world\n";
	return;
}
$rows = (int)$rows;
$name = htmlspecialchars($_GET['name'] ?? 'world');
header('Content-Type: text/html; charset=utf-8');
$out = ["<!DOCTYPE html>\n<html><head><title>Report for $name</title></head><body>\n<h1>Report for $name</h1>\n<table>\n<tr><th>#</th><th>item</th><th>value</th><th>code</th></tr>\n"];
for ($i = 1; $i <= $rows; $i++) {
	$out[] = sprintf("<tr><td>%d</td><td>%s item %d</td><td>%d</td><td>%x</td></tr>\n",
		$i, $name, $i, ($i * $i) % 997, ($i * 2654435761) % 4294967296);
}
$out[] = "</table>\n<p>$rows rows</p>\n</body></html>\n";
echo implode('', $out);
