require ["reject","fileinto"];
if header :is "x-spam-flag" "YES" { reject "Your message looks like spam."; stop; }
if header :contains "subject" "Invoice" { fileinto "Invoices"; reject "conflict"; }
