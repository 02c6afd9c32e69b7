require ["fileinto","vacation","imap4flags","envelope"];
# rule:[Newsletters]
if anyof (header :contains "subject" "newsletter", address :is "from" ["news@example.com","info@shop.example"])
{
	fileinto :create "Newsletters";
	addflag "\\Seen";
	stop;
}
# rule:[Big]
if size :over 5M { fileinto "INBOX.Big"; }
elsif not envelope :domain :is "from" "example.org" { keep; }
# rule:[Away]
if true
{
	vacation :days 7 :addresses ["bob@example.org"] :subject "Away" text:
I am away until Monday.
..A line that starts with a dot.
.
;
}
