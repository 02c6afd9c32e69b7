require ["body","fileinto"];
if body :contains "invoice" { fileinto "body-invoice"; }
if body :content "text/html" :contains "<b>invoice</b>" { fileinto "html-tags"; }
if body :content "text" :contains "€ 42" { fileinto "decoded-text"; }
if body :raw :contains "=E2=82=AC" { fileinto "raw-qp"; }
if body :content "application/pdf" :contains "%PDF" { fileinto "pdf"; }
if body :text :is "" { fileinto "empty-body"; }
if body :contains "prize" { discard; }
