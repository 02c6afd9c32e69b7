# Roundcube's mail view driven in headless Chromium, as a user would: log in,
# sort the list by subject, then switch to threads. Prints the list as Roundcube
# shows it after each step, one message per item, as "uid/depth":
#   sorted: 3/0 1/0 2/0        threads: 1/0 2/1 3/0
# Usage: roundcube_threads.py URL USER PASSWORD
import sys
import roundcube_browser
from selenium.webdriver.common.by import By

url, user, password = sys.argv[1:4]
driver, wait = roundcube_browser.start()
# The rows of the message list in the order shown, with each one's depth in its thread.
rows = ("return Array.from(document.querySelectorAll('#messagelist tbody tr')).map(tr => { "
        "const r = rcmail.message_list.rows[tr.uid]; return tr.uid + '/' + (r && r.depth ? r.depth : 0); }).join(' ')")


def listed(after):
    # Waits until the list has been drawn again (its rows replaced) and has all three messages.
    wait.until(lambda d: d.execute_script("return rcmail.busy") is False and after(d))
    return driver.execute_script(rows)


try:
    roundcube_browser.login(driver, wait, url, user, password)
    wait.until(lambda d: d.execute_script("return document.querySelectorAll('#messagelist tbody tr').length") == 3)
    driver.execute_script("rcmail.set_list_options(null, 'subject', 'ASC', 0)")
    print('sorted:', listed(lambda d: d.execute_script("return rcmail.env.sort_col") == 'subject'), flush=True)
    driver.execute_script("rcmail.set_list_options(null, 'date', 'ASC', 1)")
    print('threads:', listed(lambda d: d.execute_script("return rcmail.env.threading") in (1, True, '1')
                             and len(d.find_elements(By.CSS_SELECTOR, '#messagelist tbody tr')) == 3), flush=True)
finally:
    driver.quit()
